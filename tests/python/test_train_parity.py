#!/usr/bin/env python3
"""One epoch of plain SGD in PyTorch and in mtlite's Trainer: the same weights after it.

    /usr/bin/python3 tests/python/test_train_parity.py build/tests/train_parity [--keep DIR]

The issue's criterion: the same MMoE, the same initial weights and the same batches for one epoch
of plain SGD give parameters equal to 1e-4 in PyTorch and in mtlite.

An MMoE with every kind of feature (dense with each normalisation, vocabulary and hashed
categorical ids with out-of-vocabulary values, multi-hot bags pooled by sum and by mean, empty
bags) and two binary tasks, one of them with masked labels and sample weights and a loss_weight
of 0.7. PyTorch (tools/python/mtlite_torch.py's MtliteModel) starts from seeded weights (biases
random too), which are written as safetensors; the same N batches (different sizes: one row,
more rows than the Trainer's 128-row chunk, one batch whose second task is entirely masked)
go into a JSON file. PyTorch trains one epoch of torch.optim.SGD (lr 0.05, no momentum, no
weight decay) on the batches in order, with the trainer's loss (include/mtlite/offline/train/loss.hpp,
docs/models.md, "Losses"):
    L = sum_k w_k (sum_i m_ik s_i l_ik) / (sum_i m_ik s_i),  l = BCE from the logit,
a task with no labelled row of positive weight contributing nothing. The C++ helper
(tests/train_parity.cpp) runs Trainer with OptimizerKind::sgd, the same lr, balancing fixed, on
1 and on 2 threads, and writes its final weights. Checked:
    max |torch - mtlite| <= 1e-4 over every element of every parameter, on each thread count;
    every parameter moved (so each one is really compared after training);
    the per-step objectives agree (relative 1e-5);
the same for one epoch of Adam (lr 0.01) and Adagrad (lr 0.05) against torch.optim.Adam and
Adagrad with their defaults, mtlite's lazy embedding rows emulated for Adam (a row the batch
does not look up keeps its value and moments, as with torch.optim.SparseAdam; dense Adam would
move it by its momentum, about 1e-2 here);
and that the comparison can fail: a different learning rate, the masks and sample weights left
out, and one perturbed batch each give a difference > 1e-4.

Exit status 0 when every check passes. Runs in a few seconds.
"""

import json
import math
import os
import random
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "python"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import mtlite_torch as mt  # noqa: E402
from harness import check  # noqa: E402
import harness  # noqa: E402

TOL = 1e-4
LR = 0.05
# Batch sizes of the epoch: a single row, more rows than a Trainer chunk (128) and than a
# 2-thread shard (64), and uneven sizes. Batch 5 has the second task entirely masked.
BATCH_ROWS = [64, 200, 1, 130, 257, 96, 300, 17, 128, 180]
MASKED_BATCH = 5

SPEC = {
    "architecture": "mmoe",
    "features": [
        {"name": "age", "kind": "dense", "normalization": "standardize", "mean": 38.0, "stddev": 12.0},
        {"name": "country", "kind": "categorical", "size": 20, "embedding_dim": 4},
        {"name": "price", "kind": "dense", "normalization": "log1p"},
        {"name": "item", "kind": "categorical", "mapping": "hashing", "size": 97, "embedding_dim": 5},
        {"name": "raw", "kind": "dense"},
        {"name": "spend", "kind": "dense", "normalization": ["log1p", "standardize"], "mean": 2.0, "stddev": 1.5},
        {"name": "recent", "kind": "multi_hot", "size": 30, "embedding_dim": 3},
        {"name": "tags", "kind": "multi_hot", "mapping": "hashing", "size": 50, "embedding_dim": 4,
         "pooling": "mean"},
    ],
    "tasks": [
        {"name": "click", "kind": "binary", "tower": [16, {"units": 8, "activation": "tanh"}]},
        {"name": "like", "kind": "binary", "loss_weight": 0.7, "tower": [8]},
    ],
    "experts": 3,
    "expert": [16, {"units": 12, "activation": "tanh"}],
}


# ---------------------------------------------------------------------------------------------
# Data

def make_batches(rng):
    """[{"rows", "dense", "ids", "bags", "labels", "mask", "weights"}] with Python values.
    Labels depend on the inputs a little, so that training has something to learn."""
    spec = mt.canonical_spec(SPEC)
    batches = []
    for b, n in enumerate(BATCH_ROWS):
        rows, labels, mask, weights = [], [], [], []
        for _ in range(n):
            def vocab_id(size):
                return rng.randrange(size) if rng.random() < 0.85 else rng.choice([-1, size, size + 7, -(1 << 40)])
            price = rng.choice([0.0, 1.0, -1.0]) * math.exp(rng.uniform(-3, 6))
            row = {
                "age": rng.gauss(38, 12),
                "country": vocab_id(20),
                "price": price,
                "item": rng.randrange(-(1 << 63), 1 << 63) if rng.random() < 0.5 else rng.randrange(-20, 300),
                "raw": rng.uniform(-3, 3),
                "spend": rng.choice([0.0, 1.0, -1.0]) * math.exp(rng.uniform(-2, 5)),
                "recent": [vocab_id(30) for _ in range(rng.choice([0, 1, 2, 3, 5]))],
                "tags": [rng.randrange(-(1 << 63), 1 << 63) for _ in range(rng.choice([0, 1, 2, 4]))],
            }
            rows.append(row)
            s = 0.04 * (row["age"] - 38) + 0.3 * row["raw"] + (0.8 if row["country"] in (1, 2, 3) else 0)
            p_click = 1 / (1 + math.exp(-s))
            p_like = 1 / (1 + math.exp(s - 0.5 * len(row["recent"])))
            labels += [1.0 if rng.random() < p_click else 0.0, 1.0 if rng.random() < p_like else 0.0]
            masked_like = b == MASKED_BATCH or rng.random() < 0.3
            mask += [1, 0 if masked_like else 1]
            # Sample weights: mostly positive, some exactly 0 (the row then counts for nothing).
            weights.append(0.0 if rng.random() < 0.1 else round(rng.uniform(0.2, 3.0), 3))
        dense, ids, bags = mt.make_batch(spec, rows)
        batches.append({"rows": n, "dense": dense, "ids": ids, "bags": bags,
                        "labels": torch.tensor(labels, dtype=torch.float32).reshape(n, 2),
                        "mask": torch.tensor(mask, dtype=torch.float32).reshape(n, 2),
                        "weights": torch.tensor(weights, dtype=torch.float32)})
    return batches


def batches_json(batches, with_mask=True, with_weights=True):
    out = []
    for b in batches:
        j = {"rows": b["rows"],
             "dense": [float(v) for v in b["dense"].reshape(-1).tolist()],  # float32 values, exactly
             "ids": [str(v) for v in b["ids"].reshape(-1).tolist()],
             "bags": [{"ids": [str(v) for v in i.tolist()], "offsets": o.tolist()} for i, o in b["bags"]],
             "labels": [float(v) for v in b["labels"].reshape(-1).tolist()]}
        if with_mask:
            j["mask"] = [int(v) for v in b["mask"].reshape(-1).tolist()]
        if with_weights:
            j["weights"] = [float(v) for v in b["weights"].tolist()]
        out.append(j)
    return {"batches": out}


# ---------------------------------------------------------------------------------------------
# PyTorch

def logits_model(spec, init):
    """An MtliteModel whose task outputs are the logits (the head's sigmoid left out), loaded
    with the initial weights: the trainer's loss is BCE from the logit."""
    model = mt.MtliteModel(spec)
    model.load_mtlite_state_dict(init)
    for k in range(len(model.spec["tasks"])):
        getattr(model, f"tower{k}").activations[-1] = "identity"
    return model


def trainer_loss(spec, logits, labels, mask, weights):
    """loss.hpp's objective: sum_k w_k (sum_i m_ik s_i l_ik) / (sum_i m_ik s_i)."""
    total = torch.zeros(())
    for k, t in enumerate(spec["tasks"]):
        z = logits[t["name"]]
        m = mask[:, k] * weights
        denom = m.sum()
        if float(denom) <= 0.0:
            continue  # the task sits the batch out
        l = F.binary_cross_entropy_with_logits(z, labels[:, k], reduction="none")
        total = total + t["loss_weight"] * (m * l).sum() / denom
    return total


def touched_rows(model, b):
    """{feature name: the table rows batch b looks up} (mtlite's lazy update set)."""
    out, ci, bi = {}, 0, 0
    for f in model.spec["features"]:
        if f["kind"] == "categorical":
            out[f["name"]] = model._rows(f, b["ids"][:, ci])
            ci += 1
        elif f["kind"] == "multi_hot":
            ids, offsets = b["bags"][bi]
            out[f["name"]] = model._rows(f, ids[int(offsets[0]):int(offsets[-1])])
            bi += 1
    return out


def torch_epoch(spec, init, batches, lr, optimizer="sgd"):
    """(final weights {mtlite name: tensor}, [objective of each step before its update]).
    sgd: torch.optim.SGD (no momentum, no weight decay). adagrad: torch.optim.Adagrad (defaults,
    eps 1e-10). adam: torch.optim.Adam (defaults) with mtlite's lazy embedding rows: a table row
    the batch does not look up keeps its value and moments (torch.optim.SparseAdam's rule; dense
    Adam would move it by its momentum). SGD and Adagrad leave such rows alone anyway."""
    torch.manual_seed(0)
    model = logits_model(spec, init)
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.0, weight_decay=0.0)
    elif optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        opt = torch.optim.Adagrad(model.parameters(), lr=lr)
    tables = {f["name"]: model.embedding[mt._escape(f["name"])]
              for f in model.spec["features"] if f["kind"] != "dense"}
    objectives = []
    for b in batches:
        saved = {}
        if optimizer == "adam":
            rows = touched_rows(model, b)
            for name, p in tables.items():
                keep = torch.ones(p.shape[0], dtype=torch.bool)
                keep[rows[name]] = False
                state = {k: v.clone() for k, v in opt.state.get(p, {}).items() if k != "step"}
                saved[name] = (keep, p.detach().clone(), state)
        opt.zero_grad()
        loss = trainer_loss(model.spec, model(b["dense"], b["ids"], b["bags"]), b["labels"], b["mask"],
                            b["weights"])
        loss.backward()
        opt.step()
        with torch.no_grad():
            for name, (keep, value, state) in saved.items():
                p = tables[name]
                p[keep] = value[keep]
                for k in ("exp_avg", "exp_avg_sq"):
                    opt.state[p][k][keep] = state[k][keep] if k in state else 0.0
        objectives.append(float(loss))
    return model.mtlite_state_dict(), objectives


# ---------------------------------------------------------------------------------------------
# mtlite

class Runner:
    def __init__(self, helper, workdir, spec_path, init_path):
        self.helper, self.workdir = helper, workdir
        self.spec_path, self.init_path = spec_path, init_path

    def run(self, tag, batches_doc, lr, threads, optimizer="sgd"):
        """(weights {name: tensor}, objectives) or (None, error text)."""
        batches_path = os.path.join(self.workdir, tag + ".batches.json")
        out_path = os.path.join(self.workdir, tag + ".safetensors")
        with open(batches_path, "w", encoding="utf-8") as f:
            json.dump(batches_doc, f, allow_nan=False)
        p = subprocess.run([self.helper, self.spec_path, self.init_path, batches_path, out_path,
                            repr(lr), str(threads), optimizer], capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            return None, p.stderr.strip()
        weights, _ = mt.read_safetensors(out_path)
        return weights, json.loads(p.stdout)["objectives"]


def max_diff(a, b):
    """(max |a - b| over every element of every parameter, name of the worst parameter)."""
    if set(a) != set(b):
        return math.inf, f"names differ: {sorted(set(a) ^ set(b))}"
    worst, where = 0.0, ""
    for name in a:
        if tuple(a[name].shape) != tuple(b[name].shape):
            return math.inf, f"{name}: shape {tuple(a[name].shape)} vs {tuple(b[name].shape)}"
        d = float((a[name].double() - b[name].double()).abs().max()) if a[name].numel() else 0.0
        if not d <= worst:  # NaN propagates as the worst
            worst, where = d, name
    return worst, where


def objectives_close(a, b):
    return len(a) == len(b) and all(abs(x - y) <= 1e-5 * max(1.0, abs(y)) for x, y in zip(a, b))


def main():
    (helper,), workdir = harness.start(__doc__, 1, "mtlite_train_parity_")

    spec = mt.canonical_spec(SPEC)
    spec_path = os.path.join(workdir, "spec.json")
    with open(spec_path, "w", encoding="utf-8") as f:
        json.dump(spec, f, indent=1)
    init = mt.MtliteModel(spec, seed=11, bias_range=0.2).mtlite_state_dict()
    init_path = os.path.join(workdir, "init.safetensors")
    mt.write_safetensors(init_path, init)
    init, _ = mt.read_safetensors(init_path)  # exactly what mtlite starts from
    runner = Runner(helper, workdir, spec_path, init_path)

    batches = make_batches(random.Random(20240612))
    doc = batches_json(batches)
    want, want_obj = torch_epoch(spec, init, batches, LR)
    moved = [n for n in want if not torch.equal(want[n], init[n])]
    check("torch: one SGD epoch moves every parameter", len(moved) == len(want),
          f"{len(moved)}/{len(want)} moved; objective {want_obj[0]:.4f} -> {want_obj[-1]:.4f}")

    results, other = {}, {}
    for threads in (1, 2):
        got, obj = runner.run(f"sgd_t{threads}", doc, LR, threads)
        if got is None:
            check(f"mtlite ({threads} thread{'s' if threads > 1 else ''}) trains", False, obj)
            continue
        worst, where = max_diff(want, got)
        results[threads] = (worst, got)
        check(f"{threads} thread{'s' if threads > 1 else ''}: max |torch - mtlite| <= {TOL:g} after "
              f"{len(batches)} SGD steps", worst <= TOL, f"max {worst:.3e} at {where}")
        check(f"{threads} thread{'s' if threads > 1 else ''}: per-step objectives agree",
              objectives_close(obj, want_obj),
              f"max rel diff {max(abs(x - y) / max(1.0, abs(y)) for x, y in zip(obj, want_obj)):.2e}"
              if len(obj) == len(want_obj) else f"{len(obj)} objectives")
    if 1 in results and 2 in results:
        d12, _ = max_diff(results[1][1], results[2][1])
        print(f"      (1 thread vs 2 threads: max diff {d12:.3e})")

    # Adam and Adagrad too (not the criterion, but the same harness): mtlite's formulas
    # are PyTorch 1.13's, with lazy embedding rows.
    for optimizer, lr in (("adam", 0.01), ("adagrad", 0.05)):
        want_o, want_obj_o = torch_epoch(spec, init, batches, lr, optimizer)
        for threads in (1, 2):
            got, obj = runner.run(f"{optimizer}_t{threads}", doc, lr, threads, optimizer)
            worst, where = max_diff(want_o, got) if got is not None else (math.inf, obj)
            other[f"{optimizer}, {threads} thread(s)"] = worst
            check(f"{optimizer} (lr {lr}), {threads} thread{'s' if threads > 1 else ''}: max |torch - mtlite| "
                  f"<= {TOL:g}, objectives agree",
                  worst <= TOL and objectives_close(obj, want_obj_o), f"max {worst:.3e} at {where}")

    # The comparison can fail.
    controls = []
    got, _ = runner.run("lr", doc, LR * 0.9, 1)
    controls.append(("a learning rate of 0.045 instead of 0.05", got))
    got, _ = runner.run("nomask", batches_json(batches, with_mask=False, with_weights=False), LR, 1)
    controls.append(("masks and sample weights left out", got))
    perturbed = [dict(b) for b in batches]
    labels = perturbed[3]["labels"].clone()
    labels[:, 0] = 1.0 - labels[:, 0]
    perturbed[3]["labels"] = labels
    got, _ = runner.run("perturbed", batches_json(perturbed), LR, 1)
    controls.append(("batch 3 with its click labels flipped", got))
    for what, got in controls:
        worst = max_diff(want, got)[0] if got is not None else 0.0
        check(f"negative control: {what} is detected", got is not None and worst > TOL,
              f"max {worst:.3e}")

    print()
    for threads, (worst, _) in sorted(results.items()):
        print(f"max |torch - mtlite| after one SGD epoch, {threads} thread(s): {worst:.3e}")
    for what, worst in other.items():
        print(f"max |torch - mtlite| after one epoch of {what}: {worst:.3e}")
    return harness.finish()


if __name__ == "__main__":
    sys.exit(main())
