#!/usr/bin/env python3
"""The road from PyTorch: rows encoded by `mtlite encode`, a model trained on them in PyTorch,
exported with its data binding, converted, and scored by mtlite from the raw CSV rows.

    /usr/bin/python3 tests/python/test_encoding.py build/tools/mtlite [--keep DIR]

On synthetic rows that use every binding (vocabulary and hashed ids from strings and integers,
multi-hot lists of both, missing values and fill values, standardize statistics fitted on the
training file, a quoted field, weights, groups, a binary and a regression task) and, when it is
present, on census-income (MTLITE_CENSUS_DIR, default ../shared/data/census-income beside the
repository; its absence is printed and those checks are not counted):
  - EncodedRows reads every row; a PyTorch MtliteModel trained a few Adam steps on them through a
    DataLoader is exported (model.json with the fitted bindings + .safetensors) and converted;
  - `mtlite predict` on the raw CSV rows gives PyTorch's scores: |mtlite - torch| <= 1e-5 *
    max(1, |torch|);
  - `mtlite encode --model` with the binding the converted model keeps writes the same tensors,
    bit for bit, as the encoding PyTorch trained on;
  - the comparison can fail: the same weights converted with two vocabulary entries swapped
    score differently.
Also: state dicts with DistributedDataParallel's and torch.compile's prefixes load, and export()
unwraps its wrappers; errors are short.
"""

import json
import os
import random
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "python"))

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import mtlite_torch as mt  # noqa: E402
from harness import check  # noqa: E402
import harness  # noqa: E402

TOL = 1e-5

SYNTH_CONFIG = {
    "architecture": "mmoe",
    "data": {"header": True, "missing": ["?"], "weight": "w", "group": "uid"},
    "features": [
        {"name": "age", "kind": "dense", "normalization": "standardize"},
        {"name": "spend", "kind": "dense", "normalization": ["log1p", "standardize"]},
        {"name": "country", "kind": "categorical", "min_count": 2, "embedding_dim": 4},
        {"name": "user", "kind": "categorical", "values": "integers", "mapping": "hashing", "size": 50,
         "embedding_dim": 4},
        {"name": "item", "kind": "categorical", "mapping": "hashing", "size": 64, "embedding_dim": 4},
        {"name": "tags", "kind": "multi_hot", "embedding_dim": 4, "pooling": "mean"},
        {"name": "cats", "kind": "multi_hot", "values": "integers", "mapping": "hashing", "size": 32,
         "embedding_dim": 4},
    ],
    "tasks": [
        {"name": "click", "kind": "binary", "positive": ["yes"], "tower": [4]},
        {"name": "time", "kind": "regression", "role": "auxiliary", "loss_weight": 0.1, "tower": [4]},
    ],
    "experts": 2,
    "expert": [8],
}

COUNTRIES = ["US", "DE", "FR", '"Korea, South"', "JP", "BR", "IN", "rare1", "rare2"]
TAGS = ["news", "sport", "music", "tech", "food", "art"]


def write_synth(path, rows, seed):
    rng = random.Random(seed)
    with open(path, "w") as f:
        f.write("uid,age,spend,country,user,item,tags,cats,click,time,w\n")
        for _ in range(rows):
            country = rng.choice(COUNTRIES[:7]) if rng.random() < 0.97 else rng.choice(COUNTRIES[7:])
            age = "?" if rng.random() < 0.1 else f"{rng.uniform(18, 80):.2f}"
            spend = "" if rng.random() < 0.1 else f"{rng.expovariate(0.01):.3f}"
            tags = "|".join(rng.sample(TAGS, rng.randint(0, 3)))
            cats = "|".join(str(rng.randint(-5, 10 ** 6)) for _ in range(rng.randint(0, 4)))
            click = "?" if rng.random() < 0.05 else ("yes" if rng.random() < 0.3 else "no")
            f.write(f"{rng.randint(0, 99)},{age},{spend},{country},{rng.randint(-3, 10 ** 9)},"
                    f"item{rng.randint(0, 500)},{tags},{cats},{click},{rng.uniform(0, 60):.2f},"
                    f"{rng.choice([0.5, 1, 2])}\n")


def run(*cmd):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{r.stderr}")
    return r.stdout


def read_scores(path):
    with open(path) as f:
        header = f.readline().strip().split(",")
        cols = [[float(x) for x in line.strip().split(",")] for line in f]
    return {name: [row[i] for row in cols] for i, name in enumerate(header)}


def max_rel_diff(ours, theirs):
    return max((abs(a - b) / max(1.0, abs(b)) for a, b in zip(ours, theirs)), default=0.0)


def same_tensors(a_path, b_path):
    a, _ = mt.read_safetensors(a_path, as_float=False)
    b, _ = mt.read_safetensors(b_path, as_float=False)
    if list(a) != list(b):
        return False, f"tensors {list(a)} vs {list(b)}"
    for name in a:
        x, y = a[name], b[name]
        if x.dtype == torch.float32:  # bit for bit
            x, y = x.view(torch.int32), y.view(torch.int32)
        if x.shape != y.shape or not torch.equal(x, y):
            return False, f"{name} differs"
    return True, f"{len(a)} tensors"


def road(mtlite, work, name, config, train, test, steps, rows_note):
    """encode -> train in PyTorch -> export -> convert -> predict on raw rows, compared."""
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    cfg = os.path.join(d, "config.json")
    with open(cfg, "w") as f:
        json.dump(config, f)
    enc = os.path.join(d, "enc")
    run(mtlite, "encode", "--config", cfg, "--fit", train, "--out", enc, f"train={train}", f"test={test}")
    with open(os.path.join(enc, "model.json")) as f:
        doc = json.load(f)
    train_rows = mt.EncodedRows(os.path.join(enc, "train.safetensors"), doc)
    test_rows = mt.EncodedRows(os.path.join(enc, "test.safetensors"), doc)
    check(f"{name}: EncodedRows reads the encoded files", len(train_rows) > 0 and len(test_rows) > 0,
          f"{len(train_rows)} + {len(test_rows)} rows{rows_note}")

    torch.manual_seed(1)
    model = mt.MtliteModel(doc, seed=3, bias_range=0.1)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loader = DataLoader(train_rows, batch_size=64, shuffle=True, collate_fn=train_rows.batch)
    done = 0
    while done < steps:
        for b in loader:
            opt.zero_grad()
            loss = mt.multitask_loss(model.spec, model(b.dense, b.ids, b.bags), b.labels, b.masks, b.weights)
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
    with torch.no_grad():
        b = test_rows.batch(range(len(test_rows)))
        torch_scores = {k: v.tolist() for k, v in model(b.dense, b.ids, b.bags).items()}

    prefix = os.path.join(d, "ranker")
    json_path, st_path = mt.export(model, None, prefix)
    with open(json_path) as f:
        exported = json.load(f)
    check(f"{name}: export() writes the fitted data binding", "data" in exported and
          all("column" in f for f in exported["features"]))
    mtl = os.path.join(d, "ranker.mtl")
    run(mtlite, "convert", st_path, "--config", json_path, "--out", mtl, "--calib", test)
    run(mtlite, "predict", mtl, "--data", test, "--out", os.path.join(d, "pred.csv"))
    ours = read_scores(os.path.join(d, "pred.csv"))
    worst = max(max_rel_diff(ours[o], torch_scores[o]) for o in torch_scores)
    check(f"{name}: mtlite predict on the raw rows == PyTorch on the encoded rows", worst <= TOL,
          f"max relative difference {worst:.2e} over {len(test_rows)} rows x {len(torch_scores)} outputs")

    run(mtlite, "encode", "--model", mtl, "--out", os.path.join(d, "again"), f"test={test}")
    ok, detail = same_tensors(os.path.join(enc, "test.safetensors"), os.path.join(d, "again", "test.safetensors"))
    check(f"{name}: the converted model's binding encodes the rows bit for bit as PyTorch saw them", ok, detail)

    # Can fail: the first vocabulary feature's first two entries swapped.
    for f in exported["features"]:
        if isinstance(f.get("vocabulary"), list) and len(f["vocabulary"]) >= 2:
            f["vocabulary"][0], f["vocabulary"][1] = f["vocabulary"][1], f["vocabulary"][0]
            swapped = f["name"]
            break
    bad_json = os.path.join(d, "swapped.json")
    with open(bad_json, "w") as fh:
        json.dump(exported, fh)
    run(mtlite, "convert", st_path, "--config", bad_json, "--out", os.path.join(d, "swapped.mtl"))
    run(mtlite, "predict", os.path.join(d, "swapped.mtl"), "--data", test, "--out", os.path.join(d, "swapped.csv"))
    bad = read_scores(os.path.join(d, "swapped.csv"))
    worst_bad = max(max_rel_diff(bad[o], torch_scores[o]) for o in torch_scores)
    check(f"{name}: ... and the comparison fails with two vocabulary entries of '{swapped}' swapped",
          worst_bad > 100 * TOL, f"max relative difference {worst_bad:.2e}")


def wrappers(work):
    spec = {"architecture": "single_task", "features": [{"name": "x", "kind": "dense"}],
            "tasks": [{"name": "y", "kind": "binary", "tower": [2]}]}
    model = mt.MtliteModel(spec, seed=1)
    state = model.state_dict()
    for prefix in ("module.", "_orig_mod.", "_orig_mod.module."):
        fresh = mt.MtliteModel(spec, seed=2)
        fresh.load_state_dict({prefix + k: v for k, v in state.items()})
        check(f"load_state_dict strips '{prefix}'", all(torch.equal(fresh.state_dict()[k], v) for k, v in state.items()))
    fresh = mt.MtliteModel(spec, seed=2)
    fresh.load_mtlite_state_dict({"module." + k: v for k, v in model.mtlite_state_dict().items()})
    check("load_mtlite_state_dict strips 'module.'", torch.equal(fresh.tower0[0].weight, model.tower0[0].weight))
    try:
        fresh.load_state_dict({"module.tower0.0.weight": state["tower0.0.weight"]})
        check("a partial state dict: a short error", False, "no error")
    except KeyError as e:
        msg = str(e)
        check("a partial state dict: a short error naming the missing keys",
              "missing 'tower0.0.bias'" in msg and len(msg) < 200, msg)

    class Compiled(torch.nn.Module):  # what torch.compile returns: the model under _orig_mod
        def __init__(self, m):
            super().__init__()
            self._orig_mod = m
    prefix = os.path.join(work, "wrapped")
    j, _ = mt.export(Compiled(torch.nn.DataParallel(model)), None, prefix)
    check("export() unwraps DataParallel and torch.compile", mt.load(prefix).state_dict().keys() == state.keys())
    try:
        mt.export(torch.nn.Linear(1, 1), None, prefix)
        check("export() of something else: a short error", False, "no error")
    except TypeError as e:
        check("export() of something else: a short error", "got Linear" in str(e), str(e))


def main():
    (mtlite,), work = harness.start(__doc__.split("\n\n")[1], 1, "mtlite-encoding-")
    train, test = os.path.join(work, "synth-train.csv"), os.path.join(work, "synth-test.csv")
    write_synth(train, 800, seed=1)
    write_synth(test, 300, seed=2)
    road(mtlite, work, "synthetic", SYNTH_CONFIG, train, test, steps=30, rows_note="")
    wrappers(work)

    census = os.environ.get("MTLITE_CENSUS_DIR",
                            os.path.join(HERE, "..", "..", "..", "shared", "data", "census-income"))
    data = os.path.join(census, "census-income.data.gz")
    if os.path.exists(data):
        with open(os.path.join(HERE, "..", "..", "examples", "census-income", "model.json")) as f:
            config = json.load(f)
        road(mtlite, work, "census-income", config, data, os.path.join(census, "census-income.test.gz"),
             steps=50, rows_note=" (the census-income files)")
    else:
        print(f"census-income not found at {census}: its checks were not run (set MTLITE_CENSUS_DIR)")
    return harness.finish()


if __name__ == "__main__":
    sys.exit(main())
