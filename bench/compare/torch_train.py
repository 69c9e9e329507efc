#!/usr/bin/env python3
"""The PyTorch peer of mtlite's trainer: the census-income MMoE trained with PyTorch 1.13.

    /usr/bin/python3 bench/compare/torch_train.py [--data DIR] [--config model.json]
        [--epochs N] [--patience N] [--batch-size 256] [--lr 1e-3] [--threads 2] [--seed 1]
        [--split protocol|none] [--impl packed|module] [--no-foreach] [--export PREFIX]

The measurement the done-criterion asks for (rows/s on 2 threads, test AUC) is the default run:
    LD_LIBRARY_PATH=<OpenBLAS, see "BLAS" below> /usr/bin/python3 bench/compare/torch_train.py
next to `examples/census-income/run.sh` (mtlite train with the same split, seed and settings).
For speed alone, `--split none --epochs 3` trains three epochs and scores the whole test file.

What it does, so that it can be set against mtlite's Trainer on the same machine:
  * model: examples/census-income/model.json (features, embedding sizes, 8 experts of one
    16-unit ReLU layer, a softmax gate per task, towers of 8 units, 2 binary tasks), built with
    tools/python/mtlite_torch.py's MtliteModel: the runtime's math and its parameter names.
  * data: census-income.data.gz for training, census-income.test.gz for validation and test
    (see below), encoded as mtlite's data layer (tools/data/dataset.cpp) encodes a model.json:
    fields split at ", " and trimmed; "?" and empty fields are missing; categorical columns get
    a vocabulary built from the training file (most frequent value first, ties by first
    appearance), and a missing or unseen value goes to the out-of-vocabulary row; standardize
    uses the training mean and population standard deviation (float32), log1p is
    sign(v) log1p(|v|) (done inside the model, like mtlite); a missing dense value takes the
    training mean. Labels: income = column 41 is "50000+.", never_married = column 7 is
    "Never married". (Checked once against the C++ data layer: the same sizes, means and
    standard deviations, and bit-identical dense values, table rows and labels on both files.)
  * training: torch.set_num_threads(THREADS); Adam (PyTorch's defaults: betas 0.9/0.999,
    eps 1e-8; mtlite's TrainOptions defaults are the same), lr and batch size from model.json's
    "training" block unless given (1e-3 and 256 there), no weight decay, no clipping; the loss
    is mtlite's fixed balancing, the sum over tasks of the mean BCE from the logits
    (include/mtlite/offline/train/loss.hpp); the training rows are shuffled every epoch with a seeded
    torch.Generator, batches of BATCH_SIZE rows (the last one smaller). The initial weights
    follow mtlite's scheme (He/Xavier uniform, embeddings uniform with variance 1/dim, zero
    biases) but are drawn by torch's generator: the same distribution, not the same values as
    `mtlite train --seed` (and the shuffles differ too), so AUCs compare across seeds, not run
    by run.
  * timing: per epoch, the training loop alone (shuffle, batch gathering, forward, loss,
    backward, Adam), with time.perf_counter; data loading and evaluation are outside it.
    rows_per_second is training rows x epochs / the summed loop time.
  * epochs and AUC, as `mtlite train` and examples/census-income/run.sh do (--split protocol,
    the default): census-income.test.gz is split 1:1 into validation and test rows by line
    number (line n is a validation row when bit 16 of n * 2654435761 mod 2^32 is 0: run.sh's
    awk rule); after every epoch both are scored; the best epoch is the one with the best
    validation AUC of the first main task; training stops after PATIENCE epochs without a
    better one (model.json's "training" block gives the defaults: up to 30 epochs, patience 3,
    batch 256, lr 1e-3); the test AUC of the best epoch is reported. AUC is exact ROC AUC over
    all rows at once, ties sharing their average rank. --split none scores the whole test file
    and reports the last epoch.

Two implementations of the same model; both train the same numbers (same initial values,
elementwise Adam), they differ only in how many ops PyTorch runs per step:
  --impl module  MtliteModel.forward as it is: per feature an id -> row mapping (where), an
                 F.embedding, then one cat; per expert an nn.Linear; per gate a Linear and a
                 softmax; the mixture as a Python sum of E products; 60 parameter tensors.
                 Several hundred ops per step (forward, backward, Adam): at batch 256 the step
                 time is mostly PyTorch's per-op overhead.
  --impl packed  (default) what a PyTorch user tuning this model writes (PackedMMoE): the
                 embedding tables of equal dim in one tensor (one lookup per dim; ids are
                 table rows already, mapped once when loading), every expert's first layer and
                 every gate in one Linear, the gates' softmax and the mixture as one bmm,
                 vectorised dense normalisation; 13 parameter tensors. Checked against
                 MtliteModel.forward at start-up (max |diff| <= 1e-5) and, after training, by
                 loading the unpacked weights into the MtliteModel and scoring the test file
                 with MtliteModel.forward (the AUCs must agree within 1e-4).
Adam runs with foreach=True (multi-tensor; PyTorch 1.13's default is the per-tensor loop);
--no-foreach measures the default. Embeddings get dense gradients (nn.Embedding's default):
Adam moves every row every step (momentum), where mtlite updates only the rows a batch
touched (like SparseAdam); with census's small vocabularies a batch touches most rows anyway.

BLAS: Debian's python3-torch calls the system libblas.so.3 for every Linear and bmm. With only
the reference BLAS (libblas3) installed that is netlib's plain loop, about 4x slower per step
here than OpenBLAS. docs/performance.md measures PyTorch with libopenblas0-openmp (and
OPENBLAS_CORETYPE unset). Without installing it system-wide:
    apt-get download libopenblas0-openmp && dpkg-deb -x libopenblas0-openmp_*.deb /tmp/openblas
    LD_LIBRARY_PATH=/tmp/openblas/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 ...
The output names the libblas the process loaded and warns about the reference one, so that a
figure from netlib's loop is not taken for PyTorch's speed.

Output: progress lines (one per epoch: time, rows/s, train loss, AUCs), then one JSON line:
  {"rows_per_second": ..., "epochs": epochs trained, "best_epoch": ..., "batch_size": 256,
   "lr": 0.001, "auc": {"income": test AUC, "never_married": ...}, "torch": "1.13...",
   "threads": 2, "impl": "packed", "adam_foreach": true, "split": "protocol", "train_rows": ...,
   "test_rows": ..., "seed": ..., "blas": "...", "history": [per epoch], "valid_auc": {...},
   "valid_rows": ...}
"""

import argparse
import collections
import gzip
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "python"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import mtlite_torch as mt  # noqa: E402

TRAIN_FILE = "census-income.data.gz"
TEST_FILE = "census-income.test.gz"

# model.json keys that bind data, not part of the spec (tools/data/dataset.cpp).
BINDING_FEATURE_KEYS = {"column", "missing", "fill", "values", "min_count", "max_size", "list_separator",
                        "vocabulary"}
BINDING_TASK_KEYS = {"column", "positive", "threshold", "missing"}


# ---------------------------------------------------------------------------------------------
# Data: model.json's bindings, the subset census-income uses.

def read_rows(path, separator, ncols=None):
    """(lists of trimmed fields, one per non-empty line; their 1-based line numbers)."""
    opener = gzip.open if path.endswith(".gz") else open
    rows, lines = [], []
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        for line_no, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = [v.strip(" \t") for v in line.split(separator)]
            if ncols is not None and len(fields) != ncols:
                raise ValueError(f"{path}:{line_no}: {len(fields)} fields, expected {ncols}")
            ncols = len(fields)
            rows.append(fields)
            lines.append(line_no)
    return rows, lines


def protocol_split(lines):
    """examples/census-income/run.sh's 1:1 split of the test file: line n is a validation row
    when bit 16 of n * 2654435761 mod 2^32 is 0, else a test row. (validation, test) indices."""
    valid, test = [], []
    for i, n in enumerate(lines):
        (valid if (n * 2654435761 % (1 << 32)) >> 16 & 1 == 0 else test).append(i)
    return valid, test


class Encoder:
    """Fits model.json's bindings on the training rows and encodes rows as (dense float32
    [n, dense features], rows int64 [n, categorical features] (already table rows:
    0..size-1, size = out-of-vocabulary), labels float32 [n, tasks])."""

    def __init__(self, model_json):
        data = model_json.get("data", {})
        unsupported = set(data) - {"separator", "header", "missing", "quotes"}
        if unsupported:
            raise NotImplementedError(f"data: {sorted(unsupported)} not supported by this script")
        if data.get("header", False):
            raise NotImplementedError("data.header: only files without a header")
        self.separator = data.get("separator", ",")
        self.missing = set(data.get("missing", [])) | {""}
        self.features, self.tasks = [], []
        for f in model_json["features"]:
            if f["kind"] == "multi_hot" or f.get("mapping", "vocabulary") != "vocabulary" or \
                    f.get("values", "strings") != "strings" or "vocabulary" in f:
                raise NotImplementedError(f"feature {f['name']!r}: only dense and string-vocabulary "
                                          "categorical features are supported here")
            if not isinstance(f.get("column"), int):
                raise NotImplementedError(f"feature {f['name']!r}: columns by index only")
            self.features.append(dict(f))
        for t in model_json["tasks"]:
            if t["kind"] != "binary" or not isinstance(t.get("column"), int):
                raise NotImplementedError(f"task {t['name']!r}: binary tasks with a column index only")
            self.tasks.append(dict(t))
        self.spec = {k: v for k, v in model_json.items() if k not in ("data", "tensors", "training")}
        self.spec["features"] = [{k: v for k, v in f.items() if k not in BINDING_FEATURE_KEYS}
                                 for f in model_json["features"]]
        self.spec["tasks"] = [{k: v for k, v in t.items() if k not in BINDING_TASK_KEYS}
                              for t in model_json["tasks"]]

    def _missing(self, f, v):
        return v in self.missing or v in f.get("missing", ())

    def fit(self, rows):
        for f, s in zip(self.features, self.spec["features"]):
            c = f["column"]
            if f["kind"] == "dense":
                xs = np.array([float(r[c]) for r in rows if not self._missing(f, r[c])], dtype=np.float64)
                mean = float(xs.mean()) if len(xs) else 0.0
                std = float(xs.std()) if len(xs) else 1.0  # population, like fit()
                std32 = float(np.float32(std))
                if not (std32 > 0 and math.isfinite(std32)):
                    std = 1.0
                if f.get("normalization") == "standardize" and "mean" not in f:
                    s["mean"] = float(np.float32(mean))
                    s["stddev"] = float(np.float32(std))
                f["_fill"] = float(np.float32(f["fill"])) if "fill" in f else float(np.float32(mean))
            else:
                counts = collections.Counter()
                first = {}
                for r in rows:
                    v = r[c]
                    if self._missing(f, v):
                        continue
                    counts[v] += 1
                    first.setdefault(v, len(first))
                keep = [v for v in first if counts[v] >= f.get("min_count", 1)]
                keep.sort(key=lambda v: (-counts[v], first[v]))
                if "max_size" in f:
                    keep = keep[:f["max_size"]]
                f["_vocab"] = {v: i for i, v in enumerate(keep)}
                s["size"] = max(1, len(keep))
        self.spec = mt.canonical_spec(self.spec)

    def encode(self, rows):
        n = len(rows)
        dense_f = [f for f in self.features if f["kind"] == "dense"]
        cat_f = [(f, s) for f, s in zip(self.features, self.spec["features"]) if f["kind"] == "categorical"]
        dense = np.empty((n, len(dense_f)), dtype=np.float32)
        ids = np.empty((n, len(cat_f)), dtype=np.int64)
        labels = np.empty((n, len(self.tasks)), dtype=np.float32)
        for j, f in enumerate(dense_f):
            c, fill = f["column"], f["_fill"]
            dense[:, j] = [fill if self._missing(f, r[c]) else float(r[c]) for r in rows]
        for j, (f, s) in enumerate(cat_f):
            c, vocab, oov = f["column"], f["_vocab"], s["size"]
            ids[:, j] = [vocab.get(r[c], oov) for r in rows]  # missing, unseen: the OOV row
        for k, t in enumerate(self.tasks):
            c = t["column"]
            if "positive" in t:
                pos = set(t["positive"])
                labels[:, k] = [1.0 if r[c] in pos else 0.0 for r in rows]
            else:
                th = t.get("threshold", 0.5)
                labels[:, k] = [1.0 if float(r[c]) > th else 0.0 for r in rows]
            if any(self._missing(t, r[c]) for r in rows):
                raise NotImplementedError(f"task {t['name']!r}: missing labels are not supported here")
        return torch.from_numpy(dense), torch.from_numpy(ids), torch.from_numpy(labels)


# ---------------------------------------------------------------------------------------------
# Models: MtliteModel's forward, and the packed equivalent.

class ModuleForward:
    """MtliteModel.forward as it is, returning logits [B, T] (the heads' sigmoid left out)."""

    def __init__(self, model):
        self.model = model
        for k in range(len(model.spec["tasks"])):
            getattr(model, f"tower{k}").activations[-1] = "identity"
        self.names = [t["name"] for t in model.spec["tasks"]]

    def __call__(self, dense, ids):
        out = self.model(dense, ids, [])
        return torch.stack([out[n] for n in self.names], dim=1)


class PackedMMoE(nn.Module):
    """The same function as an OMoE/MMoE MtliteModel (dense and vocabulary categorical
    features), with its parameters packed into a few tensors and fewer, larger ops:
      * the embedding tables of equal dim concatenated into one table per dim (one lookup per
        dim; ids must already be table rows, 0..size with size = OOV, as Encoder makes them);
      * every expert's first layer and every gate in one weight [E*H + G*E, D] (one Linear);
        later expert layers stacked [E, out, in] (one baddbmm each);
      * the gates' softmax over [B, G, E] and the mixture as one bmm;
      * dense normalisation vectorised over the dense columns.
    Adam is elementwise, so training the packed tensors is training the MtliteModel's tensors:
    same initial values, same updates. unpack() returns mtlite's parameters."""

    def __init__(self, model):
        super().__init__()
        spec = model.spec
        if spec["architecture"] not in ("omoe", "mmoe") or "esmm" in spec:
            raise NotImplementedError("--impl packed: omoe and mmoe only")
        if any(f["kind"] == "multi_hot" or f.get("mapping") == "hashing" for f in spec["features"]):
            raise NotImplementedError("--impl packed: dense and vocabulary categorical features only")
        self.spec = spec
        self.T = len(spec["tasks"])
        self.E = spec["experts"]
        self.mmoe = spec["architecture"] == "mmoe"
        self.G = self.T if self.mmoe else 1
        feats = spec["features"]
        self.cats = [f for f in feats if f["kind"] == "categorical"]
        self.dense = [f for f in feats if f["kind"] == "dense"]
        src = model.mtlite_state_dict()
        # mtlite's x: the embeddings in spec order, then the dense features in spec order.
        col_of, c = {}, 0
        for f in self.cats + self.dense:
            col_of[f["name"]] = c
            c += 1 if f["kind"] == "dense" else f["embedding_dim"]
        by_dim = collections.OrderedDict()
        for j, f in enumerate(self.cats):
            by_dim.setdefault(f["embedding_dim"], []).append((j, f))
        self.tables = nn.ParameterList()
        self.groups = []  # (cat columns, row offsets, [(feature, first row, rows)])
        x_cols = []       # mtlite x column of each column of the packed layout
        for dim, members in by_dim.items():
            parts, offsets, spans, o = [], [], [], 0
            for _, f in members:
                t = src["embedding." + f["name"]]
                parts.append(t)
                offsets.append(o)
                spans.append((f["name"], o, t.shape[0]))
                o += t.shape[0]
                x_cols += range(col_of[f["name"]], col_of[f["name"]] + dim)
            self.tables.append(nn.Parameter(torch.cat(parts, 0).clone()))
            self.groups.append((torch.tensor([j for j, _ in members]), torch.tensor(offsets), spans))
        x_cols += [col_of[f["name"]] for f in self.dense]
        inv = [0] * len(x_cols)
        for i, col in enumerate(x_cols):
            inv[col] = i
        self.perm = torch.tensor(inv, dtype=torch.int64)  # x = packed[:, perm]
        self.identity_perm = inv == list(range(len(inv)))
        std = [f["normalization"] == "standardize" for f in self.dense]
        self.mean = torch.tensor([f["mean"] if s else 0.0 for f, s in zip(self.dense, std)])
        self.std = torch.tensor([f["stddev"] if s else 1.0 for f, s in zip(self.dense, std)])
        self.any_std = any(std)
        self.log1p = torch.tensor([f["normalization"] == "log1p" for f in self.dense])
        self.any_log1p = bool(self.log1p.any())
        layers = mt._layers(spec["expert"])
        self.acts = [a for _, a in layers]
        self.H = layers[0][0]
        gates = [f"gate{k}" for k in range(self.T)] if self.mmoe else ["gate"]
        self.gate_names = gates
        E = self.E
        self.w0 = nn.Parameter(torch.cat([src[f"expert{e}.0.weight"] for e in range(E)] +
                                         [src[g + ".weight"] for g in gates], 0).clone())
        self.b0 = nn.Parameter(torch.cat([src[f"expert{e}.0.bias"] for e in range(E)] +
                                         [src[g + ".bias"] for g in gates], 0).clone())
        self.w = nn.ParameterList()
        self.b = nn.ParameterList()
        for i in range(1, len(layers)):
            self.w.append(nn.Parameter(torch.stack([src[f"expert{e}.{i}.weight"] for e in range(E)], 0).clone()))
            self.b.append(nn.Parameter(torch.stack([src[f"expert{e}.{i}.bias"] for e in range(E)], 0).clone()))
        self.towers = nn.ModuleList()
        for k, t in enumerate(spec["tasks"]):
            tl = mt._layers(t["tower"]) + [(1, "identity")]  # logits: the head's sigmoid left out
            tower = mt.Mlp(layers[-1][0], tl)
            with torch.no_grad():
                for i, linear in enumerate(tower):
                    linear.weight.copy_(src[f"tower{k}.{i}.weight"])
                    linear.bias.copy_(src[f"tower{k}.{i}.bias"])
            self.towers.append(tower)

    def forward(self, dense, ids):
        B = ids.shape[0]
        parts = []
        for table, (cols, offsets, _) in zip(self.tables, self.groups):
            parts.append(F.embedding(ids.index_select(1, cols) + offsets, table).reshape(B, -1))
        if self.dense:
            v = dense
            if self.any_std:
                v = (v - self.mean) / self.std
            if self.any_log1p:
                v = torch.where(self.log1p, torch.sign(v) * torch.log1p(torch.abs(v)), v)
            parts.append(v)
        x = torch.cat(parts, 1)
        if not self.identity_perm:
            x = x.index_select(1, self.perm)
        E, H, G = self.E, self.H, self.G
        y = F.linear(x, self.w0, self.b0)
        h = mt._activate(y[:, :E * H], self.acts[0]).reshape(B, E, H)
        for i, (w, b) in enumerate(zip(self.w, self.b)):
            h = torch.baddbmm(b.unsqueeze(1), h.transpose(0, 1), w.transpose(1, 2)).transpose(0, 1)
            h = mt._activate(h, self.acts[i + 1])
        g = torch.softmax(y[:, E * H:].reshape(B, G, E), dim=2)
        mixed = torch.bmm(g, h)  # [B, G, width]
        return torch.cat([tower(mixed[:, k if self.mmoe else 0]) for k, tower in enumerate(self.towers)], 1)

    @torch.no_grad()
    def unpack(self):
        """{mtlite parameter name: tensor}: the packed parameters split back."""
        out = {}
        for table, (_, _, spans) in zip(self.tables, self.groups):
            for name, first, rows in spans:
                out["embedding." + name] = table[first:first + rows].clone()
        E, H = self.E, self.H
        for e in range(E):
            out[f"expert{e}.0.weight"] = self.w0[e * H:(e + 1) * H].clone()
            out[f"expert{e}.0.bias"] = self.b0[e * H:(e + 1) * H].clone()
            for i, (w, b) in enumerate(zip(self.w, self.b)):
                out[f"expert{e}.{i + 1}.weight"] = w[e].clone()
                out[f"expert{e}.{i + 1}.bias"] = b[e].clone()
        for j, g in enumerate(self.gate_names):
            out[g + ".weight"] = self.w0[E * H + j * E:E * H + (j + 1) * E].clone()
            out[g + ".bias"] = self.b0[E * H + j * E:E * H + (j + 1) * E].clone()
        for k, tower in enumerate(self.towers):
            for i, linear in enumerate(tower):
                out[f"tower{k}.{i}.weight"] = linear.weight.clone()
                out[f"tower{k}.{i}.bias"] = linear.bias.clone()
        return out


def loss_of(logits, labels, loss_weights):
    """mtlite's fixed balancing without masks or weights: sum_k w_k mean_i BCE(y_ik, z_ik)."""
    l = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(0)
    return (l * loss_weights).sum()


# ---------------------------------------------------------------------------------------------
# Metrics

def auc(scores, labels):
    """Exact ROC AUC (Mann-Whitney U); tied scores share their average rank."""
    scores = np.asarray(scores, dtype=np.float32)
    labels = np.asarray(labels) > 0.5
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    y = labels[order]
    _, first, counts = np.unique(s, return_index=True, return_counts=True)
    ranks = np.repeat(first + (counts + 1) / 2.0, counts)
    npos = int(y.sum())
    nneg = len(y) - npos
    if npos == 0 or nneg == 0:
        return float("nan")
    return float((ranks[y].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


@torch.no_grad()
def evaluate(forward, dense, ids, labels, names, batch=8192):
    z = torch.cat([forward(dense[i:i + batch], ids[i:i + batch]) for i in range(0, ids.shape[0], batch)])
    p = torch.sigmoid(z).numpy()
    return {n: auc(p[:, k], labels[:, k].numpy()) for k, n in enumerate(names)}


def loaded_blas():
    """The libblas the process mapped (torch calls it for every Linear)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as f:
            libs = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
        return ", ".join(sorted(os.path.realpath(p) for p in libs)) or "none found"
    except OSError:
        return "unknown"


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "census-income"),
                    help="folder with census-income.data.gz and census-income.test.gz "
                         "(default: ../shared/data/census-income next to the repository)")
    ap.add_argument("--config", default=os.path.join(ROOT, "examples", "census-income", "model.json"))
    ap.add_argument("--epochs", type=int, help="default: model.json's training.epochs, else 10")
    ap.add_argument("--patience", type=int,
                    help="stop after N epochs without a better validation AUC (0: never); default: "
                         "model.json's training.patience, else 3")
    ap.add_argument("--batch-size", type=int, help="default: model.json's training.batch_size, else 256")
    ap.add_argument("--lr", type=float, help="default: model.json's training.lr, else 1e-3")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1, help="initial weights and shuffling")
    ap.add_argument("--split", choices=("protocol", "none"), default="protocol",
                    help="protocol: the test file split 1:1 into validation and test rows as "
                         "examples/census-income/run.sh does, the best epoch by validation AUC of the "
                         "first task, its test AUC reported; none: all of the test file, every epoch "
                         "trained, the last one's AUC reported")
    ap.add_argument("--impl", choices=("packed", "module"), default="packed")
    ap.add_argument("--no-foreach", action="store_true", help="Adam's per-tensor loop (1.13's default)")
    ap.add_argument("--max-rows", type=int, default=0, help="train on the first N rows only (0: all)")
    ap.add_argument("--export", metavar="PREFIX",
                    help="write the kept model as PREFIX.safetensors + PREFIX.json (mtlite_torch.export)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    with open(args.config, encoding="utf-8") as f:
        model_json = json.load(f)
    training = model_json.get("training", {})
    for key, arg, default in (("epochs", "epochs", 10), ("patience", "patience", 3),
                              ("batch_size", "batch_size", 256), ("lr", "lr", 1e-3)):
        if getattr(args, arg) is None:
            setattr(args, arg, training.get(key, default))
    for key in training:
        if key not in ("epochs", "patience", "batch_size", "lr", "optimizer", "seed"):
            print(f"note: model.json training.{key} is not applied by this script", flush=True)
    if training.get("optimizer", "adam") != "adam":
        raise SystemExit("this script trains with Adam; model.json asks for " + training["optimizer"])

    t0 = time.perf_counter()
    enc = Encoder(model_json)
    train_rows, _ = read_rows(os.path.join(args.data, TRAIN_FILE), enc.separator)
    test_rows, test_lines = read_rows(os.path.join(args.data, TEST_FILE), enc.separator)
    if args.max_rows:
        train_rows = train_rows[:args.max_rows]
    enc.fit(train_rows)
    tr_dense, tr_ids, tr_y = enc.encode(train_rows)
    ev_dense, ev_ids, ev_y = enc.encode(test_rows)
    del train_rows, test_rows
    if args.split == "protocol":
        v, t = protocol_split(test_lines)
        v, t = torch.tensor(v), torch.tensor(t)
        sets = {"valid": (ev_dense[v], ev_ids[v], ev_y[v]), "test": (ev_dense[t], ev_ids[t], ev_y[t])}
    else:
        sets = {"test": (ev_dense, ev_ids, ev_y)}
    spec = enc.spec
    names = [t["name"] for t in spec["tasks"]]
    metric = next(t["name"] for t in spec["tasks"] if t["role"] == "main")
    print(f"data: {tr_ids.shape[0]} training rows, " +
          ", ".join(f"{len(v[1])} {k} rows" for k, v in sets.items()) +
          f"; {len(spec['features'])} features, input width "
          f"{sum(1 if f['kind'] == 'dense' else f['embedding_dim'] for f in spec['features'])}; "
          f"positive rates (train) {', '.join(f'{n} {float(tr_y[:, k].mean()):.4f}' for k, n in enumerate(names))} "
          f"(read in {time.perf_counter() - t0:.1f} s)", flush=True)

    model = mt.MtliteModel(spec, seed=args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    module_forward = ModuleForward(model)
    net, forward = model, module_forward
    if args.impl == "packed":
        net = forward = PackedMMoE(model)
        with torch.no_grad():
            a = module_forward(tr_dense[:1000], tr_ids[:1000])
            b = forward(tr_dense[:1000], tr_ids[:1000])
        diff = float((a - b).abs().max())
        if not diff <= 1e-5:
            raise SystemExit(f"packed forward differs from MtliteModel.forward: max |diff| {diff:.3e}")
        print(f"packed forward == MtliteModel.forward on 1000 rows (max |diff| {diff:.1e}); "
              f"{len(list(net.parameters()))} parameter tensors instead of {len(list(model.parameters()))}",
              flush=True)
    loss_weights = torch.tensor([t["loss_weight"] for t in spec["tasks"]], dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                           foreach=not args.no_foreach)
    gen = torch.Generator().manual_seed(args.seed)
    n, bs = tr_ids.shape[0], args.batch_size
    blas = loaded_blas()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, impl {args.impl}, "
          f"Adam lr {args.lr} foreach={not args.no_foreach}, batch {bs}, {n_params} parameters, "
          f"up to {args.epochs} epochs" + (f", patience {args.patience}" if "valid" in sets else "") +
          f"; BLAS: {blas}", flush=True)
    if "openblas" not in blas.lower() and "mkl" not in blas.lower():
        print("warning: PyTorch is using the reference BLAS (netlib libblas3), not OpenBLAS; see the "
              "docstring (BLAS) for a fair measurement", flush=True)

    history, best, best_state, bad_epochs = [], None, None, 0
    for epoch in range(1, args.epochs + 1):
        net.train()
        loss_sum, steps = 0.0, 0
        start = time.perf_counter()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            dense, ids, y = tr_dense.index_select(0, idx), tr_ids.index_select(0, idx), tr_y.index_select(0, idx)
            opt.zero_grad(set_to_none=True)
            loss = loss_of(forward(dense, ids), y, loss_weights)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
            steps += 1
        loss_mean = float(loss_sum) / steps  # one sync per epoch, inside the timed loop
        elapsed = time.perf_counter() - start
        net.eval()
        rec = {"epoch": epoch, "seconds": round(elapsed, 3), "rows_per_second": round(n / elapsed, 1),
               "train_loss": round(loss_mean, 6)}
        for k, v in sets.items():
            rec[k + "_auc"] = evaluate(forward, *v, names)
        improved = "valid" not in sets or best is None or rec["valid_auc"][metric] > best["valid_auc"][metric]
        if improved:
            best, bad_epochs = rec, 0
            if args.export:
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            bad_epochs += 1
        history.append(rec)
        print(f"epoch {epoch}: {elapsed:.2f} s, {n / elapsed:,.0f} rows/s, train loss {loss_mean:.5f}; AUC " +
              "; ".join(f"{k} " + ", ".join(f"{t} {a:.4f}" for t, a in rec[k + "_auc"].items())
                        for k in sets) + ("  (best)" if improved and "valid" in sets else ""), flush=True)
        if "valid" in sets and args.patience > 0 and bad_epochs >= args.patience:
            print(f"stopping: {args.patience} epochs without a better validation AUC of {metric}", flush=True)
            break

    extra = {}
    if args.impl == "packed":
        # The trained packed tensors are the MtliteModel's parameters: load them back and score
        # with MtliteModel.forward itself.
        model.load_mtlite_state_dict(net.unpack())
        model.eval()
        check = evaluate(module_forward, *sets["test"], names)
        last = history[-1]["test_auc"]
        worst = max(abs(check[k] - last[k]) for k in names)
        print(f"MtliteModel.forward with the unpacked weights of epoch {history[-1]['epoch']}: test AUC " +
              ", ".join(f"{k} {v:.4f}" for k, v in check.items()) + f" (max |diff| {worst:.1e})", flush=True)
        if not worst <= 1e-4:
            raise SystemExit("the unpacked model scores differently from the packed one")
    if args.export:
        if best_state is not None:
            net.load_state_dict(best_state)
            if args.impl == "packed":
                model.load_mtlite_state_dict(net.unpack())
        json_path, st_path = mt.export(model, spec, args.export,
                                       metadata={"trainer": "bench/compare/torch_train.py",
                                                 "epoch": str(best["epoch"])})
        print(f"exported epoch {best['epoch']}: {json_path} and {st_path}", flush=True)

    seconds = sum(r["seconds"] for r in history)
    result = {
        "rows_per_second": round(n * len(history) / seconds, 1),
        "epochs": len(history),
        "best_epoch": best["epoch"],
        "batch_size": bs,
        "lr": args.lr,
        "auc": {k: round(v, 5) for k, v in best["test_auc"].items()},
        "torch": torch.__version__,
        "threads": args.threads,
        "impl": args.impl,
        "adam_foreach": not args.no_foreach,
        "split": args.split,
        "train_rows": n,
        "test_rows": int(sets["test"][1].shape[0]),
        "seed": args.seed,
        "blas": blas,
        "history": [{k: ({t: round(a, 5) for t, a in v.items()} if isinstance(v, dict) else v)
                     for k, v in r.items()} for r in history],
    }
    if "valid" in sets:
        result["valid_auc"] = {k: round(v, 5) for k, v in best["valid_auc"].items()}
        result["valid_rows"] = int(sets["valid"][1].shape[0])
    result.update(extra)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
