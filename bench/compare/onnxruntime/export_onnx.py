#!/usr/bin/python3
"""mtlite's benchmark MMoE (include/mtlite/offline/benchmark_model.hpp) as ONNX graphs, from the weights that
ort_reference_data writes (reference.safetensors: mtlite names, dense weights [out, in]).

Input "x" [B, 256] float; output "scores" [B, 3] (click, like, share), B dynamic. Opset 17.

  layout "fused":    the 8 experts' first layers as one MatMul [256, 2048], the 3 gates as one
                     [256, 24]; the experts' second layers and the towers as batched MatMuls
                     ([8,256,128] and [3,128,64], [3,64,1]); the mix as one batched MatMul
                     [B,3,8] x [B,8,128]. (Gates fused into the experts' MatMul, then split,
                     measured no faster in ORT 1.30.)
  layout "separate": one MatMul + Add per layer, as torch.onnx.export writes an nn.Module MMoE.
  dtype "int8":      what onnxruntime.quantization.quantize_dynamic(per_channel=True) produces
                     once ORT has fused it: com.microsoft DynamicQuantizeMatMul (activations
                     quantized per call to uint8, per tensor; weights int8, symmetric, one scale
                     per output column). As in mtlite's converter, the gates and the towers' last
                     layers stay float.
  "empty":           scores = x[:, :3], for the binding's per-call cost.

  /usr/bin/python3 export_onnx.py [dir]     writes mmoe_{f32,int8}_{fused,separate}.onnx, empty.onnx
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

D, EXPERTS, H1, TASKS = 256, 8, 256, 3  # input width, experts, expert hidden width, tasks
OPSET = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", (name, e["dtype"])
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[b:end], dtype="<f4").reshape(e["shape"]).astype(np.float32)
    return out


class Graph:
    def __init__(self, dtype):
        self.dtype, self.nodes, self.inits, self.count = dtype, [], [], 0

    def name(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, hint, array):
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type, inputs, hint=None, domain="", **attrs):
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], domain=domain, **attrs))
        return out

    def dense(self, x, w, b, act=None, quantize=None):
        """x [..., K] times w ([..., K, N], already in MatMul orientation) plus b, then act."""
        quantize = self.dtype == "int8" if quantize is None else quantize
        if quantize:
            # symmetric int8, one scale per output column (per expert / tower when batched)
            scale = np.maximum(np.abs(w).max(axis=-2, keepdims=True), 1e-30) / 127.0
            q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
            # the op's bias must be 1-D: batched layers (a 3-D w) add theirs after
            scale = scale.astype(np.float32) if w.ndim == 3 else scale.reshape(-1).astype(np.float32)
            y = self.op("DynamicQuantizeMatMul",
                        [x, self.const("wq", q), self.const("scale", scale), "",
                         self.const("b", b) if w.ndim == 2 else ""], domain="com.microsoft")
            if w.ndim == 3:
                y = self.op("Add", [y, self.const("b", b)])
        else:
            y = self.op("Add", [self.op("MatMul", [x, self.const("w", w)]), self.const("b", b)])
        return self.op(act, [y]) if act else y

    def ints(self, hint, values):
        return self.const(hint, np.array(values, dtype=np.int64))

    def model(self, outputs):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", D])
        y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["B", outputs[1]])
        self.nodes.append(helper.make_node("Identity", [outputs[0]], ["scores"]))
        g = helper.make_graph(self.nodes, "mtlite_reference_mmoe", [x], [y], self.inits)
        m = helper.make_model(g, opset_imports=OPSET, producer_name="mtlite export_onnx.py")
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m


def fused(w, dtype):
    g = Graph(dtype)
    w1 = np.concatenate([w[f"expert{e}.0.weight"] for e in range(EXPERTS)]).T  # [256, 2048]
    b1 = np.concatenate([w[f"expert{e}.0.bias"] for e in range(EXPERTS)])
    wg = np.concatenate([w[f"gate{k}.weight"] for k in range(TASKS)]).T       # [256, 24]
    bg = np.concatenate([w[f"gate{k}.bias"] for k in range(TASKS)])
    h1 = g.dense("x", w1, b1, "Relu")
    logits = g.dense("x", wg, bg, quantize=False)  # gates stay float
    # experts' second layers: [B, 2048] -> [8, B, 256] x [8, 256, 128] -> [B, 8, 128]
    h1 = g.op("Transpose", [g.op("Reshape", [h1, g.ints("shape", [-1, EXPERTS, H1])])], perm=[1, 0, 2])
    w2 = np.stack([w[f"expert{e}.1.weight"].T for e in range(EXPERTS)])
    b2 = np.stack([w[f"expert{e}.1.bias"][None, :] for e in range(EXPERTS)])
    experts = g.op("Transpose", [g.dense(h1, w2, b2, "Relu")], perm=[1, 0, 2])
    # gates: [B, 24] -> softmax over [B, 3, 8]; mix: [B, 3, 8] x [B, 8, 128] -> [B, 3, 128]
    gates = g.op("Softmax", [g.op("Reshape", [logits, g.ints("shape", [-1, TASKS, EXPERTS])])], axis=-1)
    mix = g.op("Transpose", [g.op("MatMul", [gates, experts])], perm=[1, 0, 2])  # [3, B, 128]
    t1 = np.stack([w[f"tower{k}.0.weight"].T for k in range(TASKS)])
    tb1 = np.stack([w[f"tower{k}.0.bias"][None, :] for k in range(TASKS)])
    t2 = np.stack([w[f"tower{k}.1.weight"].T for k in range(TASKS)])
    tb2 = np.stack([w[f"tower{k}.1.bias"][None, :] for k in range(TASKS)])
    h = g.dense(mix, t1, tb1, "Relu")
    p = g.dense(h, t2, tb2, "Sigmoid", quantize=False)                           # [3, B, 1]
    p = g.op("Transpose", [g.op("Squeeze", [p, g.ints("ax", [2])])], perm=[1, 0])  # [B, 3]
    return g.model((p, TASKS))


def separate(w, dtype):
    g = Graph(dtype)
    lin = lambda x, n, act=None, q=None: g.dense(x, w[n + ".weight"].T, w[n + ".bias"], act, q)
    experts = [g.op("Unsqueeze", [lin(lin("x", f"expert{e}.0", "Relu"), f"expert{e}.1", "Relu"),
                                  g.ints("ax", [1])]) for e in range(EXPERTS)]
    experts = g.op("Concat", experts, axis=1)  # [B, 8, 128]
    scores = []
    for k in range(TASKS):
        gate = g.op("Unsqueeze", [g.op("Softmax", [lin("x", f"gate{k}", q=False)], axis=-1), g.ints("ax", [1])])
        mix = g.op("Squeeze", [g.op("MatMul", [gate, experts]), g.ints("ax", [1])])  # [B, 128]
        scores.append(lin(lin(mix, f"tower{k}.0", "Relu"), f"tower{k}.1", "Sigmoid", q=False))
    return g.model((g.op("Concat", scores, axis=1), TASKS))


def empty():
    """x[:, :3]: the MMoE's input and output shapes and no work, for the binding's per-call cost."""
    g = Graph("f32")
    return g.model((g.op("Slice", ["x", g.ints("s", [0]), g.ints("e", [TASKS]), g.ints("ax", [1])]), TASKS))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    w = read_safetensors(os.path.join(out, "reference.safetensors"))
    models = {"empty": empty()}
    for dtype in ("f32", "int8"):
        models[f"mmoe_{dtype}_fused"] = fused(w, dtype)
        models[f"mmoe_{dtype}_separate"] = separate(w, dtype)
    for name, m in models.items():
        path = os.path.join(out, name + ".onnx")
        onnx.save(m, path)
        print(f"{path}: {len(m.graph.node)} nodes, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
