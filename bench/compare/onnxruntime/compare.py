#!/usr/bin/python3
"""Ratios mtlite / ONNX Runtime from one run.sh run.

  /usr/bin/python3 compare.py ort_before.json mtlite.json ort_after.json

ORT per batch: the faster graph layout (fused or separate) of each ORT run, then the mean of
the runs before and after mtlite. mtlite: the median aggregate of reference_bench's repetitions.
The second table takes the empty model's time (the node binding's per-call cost) off ORT's."""
import json
import sys

BATCHES = ["1", "16", "256"]


def ort_best(runs, dtype):
    """{batch: mean over runs of the fastest mmoe_<dtype>_* model}"""
    out = {}
    for b in BATCHES:
        best = [min(us[b] for name, us in r.items() if name.startswith(f"mmoe_{dtype}_")) for r in runs]
        out[b] = sum(best) / len(best)
    return out


def mtlite_medians(path):
    scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}
    out = {}
    for bm in json.load(open(path))["benchmarks"]:
        if bm.get("aggregate_name", "median") != "median" or bm.get("error_occurred"):
            continue
        name, _, batch = bm["run_name"].rpartition("/")
        out.setdefault(name.replace("BM_reference_", ""), {})[batch] = bm["real_time"] * scale[bm["time_unit"]]
    return out


def main():
    before, mt_path, after = sys.argv[1:4]
    runs = [json.load(open(before)), json.load(open(after))]
    ort = {"ort_f32": ort_best(runs, "f32"), "ort_int8": ort_best(runs, "int8")}
    empty = {b: sum(r["empty"][b] for r in runs) / len(runs) for b in BATCHES}
    mt = mtlite_medians(mt_path)
    print("median us per batch" + "".join(f"{'B=' + b:>10}" for b in BATCHES))
    for name, row in [("ORT empty model", empty), ("ORT f32 (best layout)", ort["ort_f32"]),
                      ("ORT dynamic int8", ort["ort_int8"])] + list(mt.items()):
        print(f"{name:<22}" + "".join(f"{row.get(b, float('nan')):10.1f}" for b in BATCHES))
    print("\nratios (time / time; < 1: mtlite faster)")
    pairs = [("mtlite_f32", "ort_f32"), ("mtlite_i8", "ort_int8"), ("mtlite_i8", "ort_f32"),
             ("eigen_f32", "ort_f32")]
    for m, o in pairs:
        if m in mt:
            print(f"{m + ' / ' + o:<22}" + "".join(f"{mt[m][b] / ort[o][b]:10.3f}" for b in BATCHES))
    print("\nthe same with the empty model's time taken off ORT's (ORT without the node binding)")
    for m, o in pairs:
        if m in mt:
            print(f"{m + ' / ' + o:<22}" + "".join(f"{mt[m][b] / (ort[o][b] - empty[b]):10.3f}" for b in BATCHES))


if __name__ == "__main__":
    main()
