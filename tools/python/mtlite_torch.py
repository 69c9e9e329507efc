"""mtlite_torch: PyTorch modules that compute what the mtlite runtime computes, and export.

Train a multi-task model in PyTorch, export it, serve it with mtlite:

    import mtlite_torch as mt
    spec = {...}                                   # the spec JSON form below
    model = mt.MtliteModel(spec, seed=1)           # He/Xavier init, one stream per tensor
    batch = mt.make_batch(model.spec, rows)        # rows: [{"age": 41.0, "country": 12, ...}]
    out = model(*batch)                            # {"click": Tensor[B], ..., "ctcvr": Tensor[B]}
    loss = mt.multitask_loss(model.spec, out, labels)
    ...
    mt.export(model, spec, "out/model")            # out/model.safetensors + out/model.json

Only torch and the standard library are used. Every architecture of mtlite is covered:
single_task, shared_bottom, omoe, mmoe, ple (any number of levels; the shared gate mixes every
expert of a level and feeds the next level's shared experts; the last level has none) and esmm,
standalone or on top of any other architecture.

Parameter names
---------------
The module's parameter names are mtlite's (include/mtlite/network.hpp):

    embedding.<feature>                  [size + 1, dim]   the last row is out-of-vocabulary
    bottom.<i>.weight / .bias            shared_bottom
    expert<e>.<i>.weight / .bias         omoe, mmoe
    gate.weight / .bias                  omoe (one gate)
    gate<k>.weight / .bias               mmoe (one gate per task k)
    ple<l>.task<k>.expert<j>.<i>.*       ple: task k's experts at level l
    ple<l>.shared.expert<j>.<i>.*        ple: the shared experts at level l
    ple<l>.task<k>.gate.*                ple: task k's gate (its own experts, then the shared ones)
    ple<l>.shared.gate.*                 ple: the shared gate, every level but the last
    tower<k>.<i>.weight / .bias          every architecture; the last layer has 1 unit

Weights are [out, in] as in nn.Linear. model.state_dict() keys are exactly these names, except
that a "." or "%" inside a feature name is escaped (%2E, %25) because torch forbids dots in
parameter names; model.mtlite_state_dict() always returns mtlite's names, in mtlite's order.

Inputs
------
forward(dense, ids, bags) takes mtlite's batch layout (include/mtlite/input.hpp):
    dense  float32 [B, number of dense features], raw values (normalisation happens inside)
    ids    int64   [B, number of categorical features], raw ids
    bags   one (ids int64 [n], offsets int64 [B + 1]) pair per multi-hot feature
Each kind in spec order. x = concat(embeddings of the categorical and multi-hot features in spec
order, the normalised dense features in spec order). Vocabulary ids 0..size-1 select their row,
any other id the out-of-vocabulary row `size`. Hashed ids go to row mix64(id) mod size (the id's
64-bit two's-complement pattern); a string goes in as hash_string(text) (FNV-1a 64), which
make_batch() does. Bags pool by sum or mean; an empty bag pools to zeros. Dense features:
standardize (v - mean) / stddev, log1p sign(v) * log1p(|v|), and the chain ["log1p", "standardize"]
log1p first, then standardize (mean and stddev of the log1p values).

forward returns {output name: Tensor[B]}: one per task (sigmoid for binary, identity for
regression), then pCTCVR = pCTR * pCVR under the esmm block's "ctcvr" name.

The spec JSON form (docs/model-json.md is the full reference)
--------------------------------------------------------------
A spec is a JSON object:

    {"architecture": "single_task" | "shared_bottom" | "omoe" | "mmoe" | "ple" | "esmm",
     "features": [FEATURE, ...],        non-empty, unique names
     "tasks":    [TASK, ...],           non-empty, unique names, at least one "main"
     "bottom":   MLP,                   shared_bottom only (required there, >= 1 layer)
     "experts":  N,                     omoe and mmoe only (required there, 1..1024)
     "expert":   MLP,                   omoe and mmoe only (required there, >= 1 layer)
     "levels":   [LEVEL, ...],          ple only (required there, >= 1 level)
     "esmm":     ESMM}                  required for esmm, optional for any other architecture

    FEATURE  {"name": S, "kind": "dense",
              "normalization": "none" | "log1p"}                     (default "none")
           | {"name": S, "kind": "dense", "normalization": "standardize" | ["log1p", "standardize"],
              "mean": X, "stddev": X}                                (both required, stddev > 0)
           | {"name": S, "kind": "categorical",
              "mapping": "vocabulary" | "hashing",                   (default "vocabulary")
              "size": N, "embedding_dim": N}                         (required, >= 1)
           | {"name": S, "kind": "multi_hot", "mapping": ..., "size": N, "embedding_dim": N,
              "pooling": "sum" | "mean"}                             (default "sum")
    TASK     {"name": S, "kind": "binary" | "regression",            (required)
              "role": "main" | "auxiliary",                          (default "main")
              "loss_weight": X,                                      (default 1, finite, >= 0)
              "tower": MLP,                                          (default [], hidden layers)
              "served": true}                                        (optional; see below)
    LEVEL    {"task_experts": N, "shared_experts": N, "expert": MLP} (all required)
    ESMM     {"ctr": task name, "cvr": task name,                    (required, binary tasks)
              "ctcvr": S}                                            (default "ctcvr")
    MLP      [LAYER, ...]   LAYER = N (units, relu)
                                  | {"units": N, "activation": "relu" | "tanh" | "sigmoid" |
                                     "identity"}                     (activation default "relu")

N is a non-negative integer, X a finite number, S a string. "served": false is written by
`mtlite convert --drop-aux` for a task whose tower was removed; this module builds full models only
and refuses it. Keys outside this grammar are errors
(including a key of another architecture, like "experts" in a shared_bottom spec). A model.json
is a spec plus "tensors": {mtlite parameter name: tensor name in the .safetensors file}.
canonical_spec() validates a spec (mtlite's Spec::validate rules and limits included) and returns
it with every default written out; export() writes that form.
"""

from __future__ import annotations

import collections
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "SpecError", "canonical_spec", "parameter_shapes", "MtliteModel", "Mlp", "make_batch",
    "multitask_loss", "export", "load", "write_safetensors", "read_safetensors",
    "hash_string", "mix64", "hash_bucket", "id_of", "ARCHITECTURES", "ACTIVATIONS",
    "split_model_json", "strip_wrapper_prefixes", "unwrap", "EncodedRows", "RowBatch",
]

# ---------------------------------------------------------------------------------------------
# The id hash (include/mtlite/core/hash.hpp), with Python ints.

MASK64 = (1 << 64) - 1


def hash_string(text) -> int:
    """FNV-1a 64 over the bytes of text (str is encoded as UTF-8); an unsigned 64-bit int."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    h = 0xCBF29CE484222325
    for byte in data:
        h ^= byte
        h = (h * 0x100000001B3) & MASK64
    return h


def mix64(u: int) -> int:
    """MurmurHash3's fmix64 on the 64-bit pattern of u (negative ints as two's complement)."""
    u &= MASK64
    u ^= u >> 33
    u = (u * 0xFF51AFD7ED558CCD) & MASK64
    u ^= u >> 33
    u = (u * 0xC4CEB9FE1A85EC53) & MASK64
    u ^= u >> 33
    return u


def hash_bucket(id_: int, buckets: int) -> int:
    return mix64(id_) % buckets


def _signed64(u: int) -> int:
    u &= MASK64
    return u - (1 << 64) if u >= 1 << 63 else u


def id_of(value) -> int:
    """The int64 id mtlite reads for a raw id: an int as its 64-bit pattern (so unsigned values
    up to 2^64 - 1 are accepted), a str or bytes as hash_string(value)."""
    if isinstance(value, (str, bytes)):
        return _signed64(hash_string(value))
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"an id must be an int, a str or bytes, not {type(value).__name__}")
    if not -(1 << 63) <= value <= MASK64:
        raise ValueError(f"id {value} does not fit in 64 bits")
    return _signed64(value)


# ---------------------------------------------------------------------------------------------
# The spec: validation and the canonical JSON form.

ARCHITECTURES = ("single_task", "shared_bottom", "omoe", "mmoe", "ple", "esmm")
ACTIVATIONS = ("identity", "relu", "sigmoid", "tanh")

# mtlite::SpecLimits
MAX_UNITS = 1 << 16
MAX_LAYERS = 64
MAX_EXPERTS = 1024
MAX_TASKS = 256
MAX_FEATURES = 1 << 16
MAX_EMBEDDING_DIM = 4096
MAX_TABLE_ROWS = 1 << 32
MAX_INPUT_DIM = 1 << 20
MAX_NAME = 256
FLOAT_MAX = 3.4028234663852886e38

_TOP_KEYS = {
    "single_task": {"bottom": False, "experts": False, "expert": False, "levels": False},
    "esmm": {"bottom": False, "experts": False, "expert": False, "levels": False},
    "shared_bottom": {"bottom": True, "experts": False, "expert": False, "levels": False},
    "omoe": {"bottom": False, "experts": True, "expert": True, "levels": False},
    "mmoe": {"bottom": False, "experts": True, "expert": True, "levels": False},
    "ple": {"bottom": False, "experts": False, "expert": False, "levels": True},
}


class SpecError(ValueError):
    """A spec that mtlite would refuse; the message names the field."""


def _keys(obj, where, allowed, required=()):
    if not isinstance(obj, dict):
        raise SpecError(f"{where}: expected an object, got {type(obj).__name__}")
    for k in obj:
        if k not in allowed:
            raise SpecError(f"{where}: unknown key {k!r} (allowed: {', '.join(sorted(allowed))})")
    for k in required:
        if k not in obj:
            raise SpecError(f"{where}: missing {k!r}")


def _uint(v, where, lo=0, hi=None):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SpecError(f"{where}: expected an integer, got {v!r}")
    if isinstance(v, float):
        if not (math.isfinite(v) and v.is_integer()):
            raise SpecError(f"{where}: expected an integer, got {v!r}")
        v = int(v)
    if v < lo or (hi is not None and v > hi):
        raise SpecError(f"{where}: {v} is outside [{lo}, {hi if hi is not None else 'inf'}]")
    return v


def _float32(v, where):
    """A finite number within float range, as the float32 value mtlite will hold."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise SpecError(f"{where}: expected a finite number, got {v!r}")
    if abs(v) > FLOAT_MAX:
        raise SpecError(f"{where}: {v!r} is beyond the float range")
    return v


def _enum(v, where, choices):
    if v not in choices:
        raise SpecError(f"{where}: expected one of {', '.join(choices)}, got {v!r}")
    return v


def _name(v, where):
    if not isinstance(v, str):
        raise SpecError(f"{where}: expected a string, got {v!r}")
    if not v:
        raise SpecError(f"{where}: name is empty")
    if len(v.encode("utf-8")) > MAX_NAME:
        raise SpecError(f"{where}: name is longer than {MAX_NAME} bytes")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in v):
        raise SpecError(f"{where}: name {v!r} has a control character")
    return v


def _mlp(v, where, may_be_empty):
    """[(units, activation)] from the JSON form."""
    if not isinstance(v, list):
        raise SpecError(f"{where}: expected an array of layers, got {v!r}")
    if not v and not may_be_empty:
        raise SpecError(f"{where}: needs at least one layer")
    if len(v) > MAX_LAYERS:
        raise SpecError(f"{where}: more than {MAX_LAYERS} layers")
    layers = []
    for i, item in enumerate(v):
        at = f"{where}[{i}]"
        if isinstance(item, dict):
            _keys(item, at, {"units", "activation"}, ("units",))
            units = _uint(item["units"], at + ".units", 1, MAX_UNITS)
            act = _enum(item.get("activation", "relu"), at + ".activation", ACTIVATIONS)
        else:
            units = _uint(item, at + ".units", 1, MAX_UNITS)
            act = "relu"
        layers.append((units, act))
    return layers


def _mlp_json(layers):
    return [u if a == "relu" else {"units": u, "activation": a} for u, a in layers]


def _layers(spec_mlp):
    """[(units, activation)] of a canonical MLP."""
    return [(l, "relu") if isinstance(l, int) else (l["units"], l["activation"]) for l in spec_mlp]


# model.json's keys beyond the spec (docs/model-json.md): the data bindings mtlite reads CSV
# rows with, the training block, and the tensors map.
_BINDING_TOP_KEYS = ("data", "training")
_BINDING_FEATURE_KEYS = ("column", "missing", "fill", "values", "min_count", "max_size", "list_separator",
                         "vocabulary")
_BINDING_TASK_KEYS = ("column", "positive", "threshold", "missing")


def split_model_json(doc) -> tuple:
    """(spec, bindings) of a model.json: the spec's keys alone, and its "data" and "training"
    blocks and every feature's and task's binding keys as {"data": ..., "training": ...,
    "features": {name: {key: value}}, "tasks": {name: {key: value}}} (empty parts left out;
    None when there are none). "tensors" is in neither."""
    if isinstance(doc, str):
        doc = json.loads(doc)
    if not isinstance(doc, dict):
        raise SpecError(f"spec: expected an object, got {type(doc).__name__}")
    spec = {k: v for k, v in doc.items() if k not in _BINDING_TOP_KEYS and k != "tensors"}
    bindings = {k: doc[k] for k in _BINDING_TOP_KEYS if k in doc}
    for list_key, keys in (("features", _BINDING_FEATURE_KEYS), ("tasks", _BINDING_TASK_KEYS)):
        items = doc.get(list_key)
        if not isinstance(items, list):
            continue
        stripped, bound = [], {}
        for item in items:
            if isinstance(item, dict):
                extra = {k: item[k] for k in keys if k in item}
                if extra and isinstance(item.get("name"), str):
                    bound[item["name"]] = extra
                item = {k: v for k, v in item.items() if k not in keys}
            stripped.append(item)
        spec[list_key] = stripped
        if bound:
            bindings[list_key] = bound
    return spec, (bindings or None)


def _with_bindings(spec: dict, bindings) -> dict:
    """A canonical spec with split_model_json's bindings put back: a model.json mtlite reads rows with."""
    doc = dict(spec)
    if not bindings:
        return doc
    for k in _BINDING_TOP_KEYS:
        if k in bindings:
            doc[k] = bindings[k]
    for list_key in ("features", "tasks"):
        bound = bindings.get(list_key, {})
        doc[list_key] = [dict(item, **bound.get(item["name"], {})) for item in spec[list_key]]
    return doc


def _normalization(v, where):
    """A dense feature's "normalization": a name, or the chain ["log1p", "standardize"] (a list;
    [] and one-name lists are that name). Returns the canonical form: a name or that list."""
    if isinstance(v, list):
        if not all(isinstance(x, str) for x in v):
            raise SpecError(f"{where}: expected a list of names")
        steps = [x for x in v if x != "none"] if len(v) == 1 else v
        if not steps:
            return "none"
        if len(steps) == 1 and steps[0] in ("none", "standardize", "log1p"):
            return steps[0]
        if steps == ["log1p", "standardize"]:
            return ["log1p", "standardize"]
        raise SpecError(f'{where}: the chains mtlite applies are [], ["log1p"], ["standardize"] and '
                        f'["log1p", "standardize"]')
    return _enum(v, where, ("none", "standardize", "log1p"))


def canonical_spec(spec: dict) -> dict:
    """Validates a spec in the JSON form and returns it with every default written out (a new
    dict; MLP layers as an integer for relu, {"units", "activation"} otherwise). A model.json's
    other keys ("tensors", "data", "training" and the binding keys of features and tasks; see
    split_model_json) are ignored here. Raises SpecError naming the field at fault."""
    if isinstance(spec, str):
        spec = json.loads(spec)
    spec, _ = split_model_json(spec)
    _keys(spec, "spec", {"architecture", "features", "tasks", "bottom", "experts", "expert",
                         "levels", "esmm", "tensors"}, ("architecture", "features", "tasks"))
    arch = _enum(spec["architecture"], "architecture", ARCHITECTURES)
    for key, needed in _TOP_KEYS[arch].items():
        if needed and key not in spec:
            raise SpecError(f"{key}: required by the {arch} architecture")
        if not needed and key in spec:
            raise SpecError(f"{key}: not part of the {arch} architecture")
    if arch == "esmm" and "esmm" not in spec:
        raise SpecError("esmm: the esmm architecture needs its ctr and cvr tasks named")

    out = {"architecture": arch}

    features = spec["features"]
    if not isinstance(features, list) or not features:
        raise SpecError("features: the spec has no features")
    if len(features) > MAX_FEATURES:
        raise SpecError("features: too many features")
    canon_features, seen, input_dim = [], set(), 0
    for i, f in enumerate(features):
        at = f"features[{i}]"
        _keys(f, at, {"name", "kind", "normalization", "mean", "stddev", "mapping", "size",
                      "embedding_dim", "pooling"}, ("name", "kind"))
        name = _name(f["name"], at + ".name")
        if name in seen:
            raise SpecError(f"{at}.name: duplicate feature {name!r}")
        seen.add(name)
        kind = _enum(f["kind"], at + ".kind", ("dense", "categorical", "multi_hot"))
        c = {"name": name, "kind": kind}
        if kind == "dense":
            _keys(f, at, {"name", "kind", "normalization", "mean", "stddev"})
            norm = _normalization(f.get("normalization", "none"), at + ".normalization")
            c["normalization"] = norm
            if "standardize" in norm:
                for k in ("mean", "stddev"):
                    if k not in f:
                        raise SpecError(f"{at}: standardize needs {k!r}")
                c["mean"] = _float32(f["mean"], at + ".mean")
                c["stddev"] = _float32(f["stddev"], at + ".stddev")
                if not struct.unpack("<f", struct.pack("<f", c["stddev"]))[0] > 0:
                    raise SpecError(f"{at}.stddev: standardize needs a positive stddev")
            else:
                for k in ("mean", "stddev"):
                    if k in f:
                        raise SpecError(f"{at}.{k}: only a standardize feature has one")
            input_dim += 1
        else:
            allowed = {"name", "kind", "mapping", "size", "embedding_dim"}
            if kind == "multi_hot":
                allowed.add("pooling")
            _keys(f, at, allowed, ("size", "embedding_dim"))
            c["mapping"] = _enum(f.get("mapping", "vocabulary"), at + ".mapping",
                                 ("vocabulary", "hashing"))
            c["size"] = _uint(f["size"], at + ".size", 1, MAX_TABLE_ROWS - 1)
            c["embedding_dim"] = _uint(f["embedding_dim"], at + ".embedding_dim", 1,
                                       MAX_EMBEDDING_DIM)
            if kind == "multi_hot":
                c["pooling"] = _enum(f.get("pooling", "sum"), at + ".pooling", ("sum", "mean"))
            input_dim += c["embedding_dim"]
        canon_features.append(c)
    if input_dim > MAX_INPUT_DIM:
        raise SpecError("features: the input is too wide")
    out["features"] = canon_features

    tasks = spec["tasks"]
    if not isinstance(tasks, list) or not tasks:
        raise SpecError("tasks: the spec has no tasks")
    if len(tasks) > MAX_TASKS:
        raise SpecError("tasks: too many tasks")
    canon_tasks, seen = [], set()
    for k, t in enumerate(tasks):
        at = f"tasks[{k}]"
        _keys(t, at, {"name", "kind", "role", "loss_weight", "tower", "served"}, ("name", "kind"))
        name = _name(t["name"], at + ".name")
        if t.get("served", True) is not True:
            raise SpecError(f"{at}.served: only true is supported here (false marks a task whose "
                            f"tower `mtlite convert --drop-aux` removed; export the full model)")
        if name in seen:
            raise SpecError(f"{at}.name: duplicate task {name!r}")
        seen.add(name)
        w = _float32(t.get("loss_weight", 1.0), at + ".loss_weight")
        if w < 0:
            raise SpecError(f"{at}.loss_weight: must be finite and non-negative")
        canon_tasks.append({
            "name": name,
            "kind": _enum(t["kind"], at + ".kind", ("binary", "regression")),
            "role": _enum(t.get("role", "main"), at + ".role", ("main", "auxiliary")),
            "loss_weight": w,
            "tower": _mlp_json(_mlp(t.get("tower", []), f"task {name!r}.tower", True)),
        })
    if all(t["role"] == "auxiliary" for t in canon_tasks):
        raise SpecError("tasks: every task is auxiliary; at least one must be a main task")
    out["tasks"] = canon_tasks
    T = len(canon_tasks)

    if arch == "shared_bottom":
        out["bottom"] = _mlp_json(_mlp(spec["bottom"], "bottom", False))
    if arch in ("omoe", "mmoe"):
        out["experts"] = _uint(spec["experts"], "experts", 1, MAX_EXPERTS)
        out["expert"] = _mlp_json(_mlp(spec["expert"], "expert", False))
    if arch == "ple":
        levels = spec["levels"]
        if not isinstance(levels, list) or not levels:
            raise SpecError("levels: PLE needs at least one level")
        if len(levels) > MAX_LAYERS:
            raise SpecError("levels: too many levels")
        canon_levels = []
        for l, lv in enumerate(levels):
            at = f"levels[{l}]"
            _keys(lv, at, {"task_experts", "shared_experts", "expert"},
                  ("task_experts", "shared_experts", "expert"))
            te = _uint(lv["task_experts"], at + ".task_experts", 0, 0xFFFFFFFF)
            se = _uint(lv["shared_experts"], at + ".shared_experts", 0, 0xFFFFFFFF)
            if not 1 <= te + se <= MAX_EXPERTS:
                raise SpecError(f"{at}: task gate (task_experts + shared_experts) must mix "
                                f"1..{MAX_EXPERTS} experts")
            if not 1 <= te * T + se <= MAX_EXPERTS:
                raise SpecError(f"{at}: shared gate (tasks x task_experts + shared_experts) must "
                                f"mix 1..{MAX_EXPERTS} experts")
            canon_levels.append({"task_experts": te, "shared_experts": se,
                                 "expert": _mlp_json(_mlp(lv["expert"], at + ".expert", False))})
        out["levels"] = canon_levels

    if "esmm" in spec:
        e = spec["esmm"]
        _keys(e, "esmm", {"ctr", "cvr", "ctcvr"}, ("ctr", "cvr"))
        by_name = {t["name"]: t for t in canon_tasks}
        for role in ("ctr", "cvr"):
            if e[role] not in by_name:
                raise SpecError(f"esmm.{role}: no task named {e[role]!r}")
        if e["ctr"] == e["cvr"]:
            raise SpecError("esmm: ctr and cvr must be two different tasks")
        if by_name[e["ctr"]]["kind"] != "binary" or by_name[e["cvr"]]["kind"] != "binary":
            raise SpecError("esmm: ctr and cvr must both be binary tasks")
        ctcvr = _name(e.get("ctcvr", "ctcvr"), "esmm.ctcvr")
        if ctcvr in by_name:
            raise SpecError(f"esmm.ctcvr: output name {ctcvr!r} collides with a task")
        out["esmm"] = {"ctr": e["ctr"], "cvr": e["cvr"], "ctcvr": ctcvr}
    return out


def output_names(spec) -> list:
    spec = canonical_spec(spec)
    names = [t["name"] for t in spec["tasks"]]
    if "esmm" in spec:
        names.append(spec["esmm"]["ctcvr"])
    return names


def parameter_shapes(spec) -> "collections.OrderedDict[str, tuple]":
    """mtlite's parameter list (weights.hpp parameters()): name -> (shape, role, activation),
    embedding tables in feature order, then every layer in network order. Derived from the spec
    alone, independently of the module, so that the two can be checked against each other."""
    spec = canonical_spec(spec)
    out = collections.OrderedDict()
    for f in spec["features"]:
        if f["kind"] != "dense":
            out["embedding." + f["name"]] = ((f["size"] + 1, f["embedding_dim"]), "embedding", "identity")
    D = sum(1 if f["kind"] == "dense" else f["embedding_dim"] for f in spec["features"])

    def mlp(name, width_in, layers):
        for i, (units, act) in enumerate(layers):
            out[f"{name}.{i}.weight"] = ((units, width_in), "weight", act)
            out[f"{name}.{i}.bias"] = ((units,), "bias", act)
            width_in = units
        return width_in

    def gate(name, width_in, experts):
        out[name + ".weight"] = ((experts, width_in), "weight", "identity")
        out[name + ".bias"] = ((experts,), "bias", "identity")

    T = len(spec["tasks"])
    arch = spec["architecture"]
    tower_in = [D] * T
    if arch == "shared_bottom":
        tower_in = [mlp("bottom", D, _layers(spec["bottom"]))] * T
    elif arch in ("omoe", "mmoe"):
        width = D
        for e in range(spec["experts"]):
            width = mlp(f"expert{e}", D, _layers(spec["expert"]))
        if arch == "omoe":
            gate("gate", D, spec["experts"])
        else:
            for k in range(T):
                gate(f"gate{k}", D, spec["experts"])
        tower_in = [width] * T
    elif arch == "ple":
        shared_in = D
        for l, lv in enumerate(spec["levels"]):
            layers = _layers(lv["expert"])
            width = layers[-1][0]
            for k in range(T):
                for j in range(lv["task_experts"]):
                    mlp(f"ple{l}.task{k}.expert{j}", tower_in[k], layers)
            for j in range(lv["shared_experts"]):
                mlp(f"ple{l}.shared.expert{j}", shared_in, layers)
            for k in range(T):
                gate(f"ple{l}.task{k}.gate", tower_in[k], lv["task_experts"] + lv["shared_experts"])
            if l + 1 < len(spec["levels"]):
                gate(f"ple{l}.shared.gate", shared_in, lv["task_experts"] * T + lv["shared_experts"])
                shared_in = width
            tower_in = [width] * T
    for k, t in enumerate(spec["tasks"]):
        head = "sigmoid" if t["kind"] == "binary" else "identity"
        mlp(f"tower{k}", tower_in[k], _layers(t["tower"]) + [(1, head)])
    return out


# ---------------------------------------------------------------------------------------------
# Modules.

def _activate(x, act):
    if act == "relu":
        return torch.relu(x)
    if act == "tanh":
        return torch.tanh(x)
    if act == "sigmoid":
        return torch.sigmoid(x)
    return x


class Mlp(nn.ModuleList):
    """Linear layers, each followed by its activation. A ModuleList of nn.Linear only, so that
    its parameters are named "<i>.weight" and "<i>.bias" as in mtlite."""

    def __init__(self, width_in, layers):
        super().__init__()
        self.activations = []
        for units, act in layers:
            self.append(nn.Linear(width_in, units))
            self.activations.append(act)
            width_in = units
        self.width = width_in

    def forward(self, x):
        for linear, act in zip(self, self.activations):
            x = _activate(linear(x), act)
        return x


def _escape(name):
    return name.replace("%", "%25").replace(".", "%2E")


def _unescape(key):
    return key.replace("%2E", ".").replace("%25", "%")


class MtliteModel(nn.Module):
    """The network of an mtlite spec. Parameter names are mtlite's (see the module docstring).

    seed: initial weights, one seeded stream per tensor (experts start different): He uniform
    before a ReLU, Xavier uniform otherwise, embeddings uniform with variance 1/dim, biases
    uniform in [-bias_range, bias_range] (zero by default, as for training).
    """

    def __init__(self, spec, seed: int = 0, bias_range: float = 0.0):
        super().__init__()
        self.spec = canonical_spec(spec)
        # A model.json's data bindings (from `mtlite encode`): export() writes them back.
        self.bindings = split_model_json(spec)[1]
        spec = self.spec
        self.output_names = output_names(spec)
        self._features = spec["features"]
        self.embedding = nn.ParameterDict({
            _escape(f["name"]): nn.Parameter(torch.empty(f["size"] + 1, f["embedding_dim"]))
            for f in spec["features"] if f["kind"] != "dense"})
        D = sum(1 if f["kind"] == "dense" else f["embedding_dim"] for f in spec["features"])
        T = len(spec["tasks"])
        arch = spec["architecture"]
        widths = [D] * T
        if arch == "shared_bottom":
            self.bottom = Mlp(D, _layers(spec["bottom"]))
            widths = [self.bottom.width] * T
        elif arch in ("omoe", "mmoe"):
            layers = _layers(spec["expert"])
            for e in range(spec["experts"]):
                self.add_module(f"expert{e}", Mlp(D, layers))
            if arch == "omoe":
                self.gate = nn.Linear(D, spec["experts"])
            else:
                for k in range(T):
                    self.add_module(f"gate{k}", nn.Linear(D, spec["experts"]))
            widths = [layers[-1][0]] * T
        elif arch == "ple":
            shared_in = D
            for l, lv in enumerate(spec["levels"]):
                layers = _layers(lv["expert"])
                level = nn.ModuleDict()
                for k in range(T):
                    task = nn.ModuleDict()
                    for j in range(lv["task_experts"]):
                        task[f"expert{j}"] = Mlp(widths[k], layers)
                    task["gate"] = nn.Linear(widths[k], lv["task_experts"] + lv["shared_experts"])
                    level[f"task{k}"] = task
                shared = nn.ModuleDict()
                for j in range(lv["shared_experts"]):
                    shared[f"expert{j}"] = Mlp(shared_in, layers)
                if l + 1 < len(spec["levels"]):
                    shared["gate"] = nn.Linear(shared_in, lv["task_experts"] * T + lv["shared_experts"])
                    shared_in = layers[-1][0]
                level["shared"] = shared
                self.add_module(f"ple{l}", level)
                widths = [layers[-1][0]] * T
        for k, t in enumerate(spec["tasks"]):
            head = "sigmoid" if t["kind"] == "binary" else "identity"
            self.add_module(f"tower{k}", Mlp(widths[k], _layers(t["tower"]) + [(1, head)]))
        self._check_names()
        self.reset_parameters(seed, bias_range)

    # --- names -------------------------------------------------------------------------------

    def _mtlite_params(self):
        out = {}
        for key, p in self.named_parameters():
            if key.startswith("embedding."):
                key = "embedding." + _unescape(key[len("embedding."):])
            out[key] = p
        return out

    def _check_names(self):
        want = parameter_shapes(self.spec)
        have = self._mtlite_params()
        if set(want) != set(have):
            raise AssertionError(f"mtlite_torch: parameter names differ from mtlite's: missing "
                                 f"{sorted(set(want) - set(have))}, extra {sorted(set(have) - set(want))}")
        for name, (shape, _, _) in want.items():
            if tuple(have[name].shape) != tuple(shape):
                raise AssertionError(f"mtlite_torch: {name} has shape {tuple(have[name].shape)}, "
                                     f"mtlite expects {shape}")

    def mtlite_state_dict(self) -> "collections.OrderedDict[str, torch.Tensor]":
        """{mtlite parameter name: detached float32 tensor}, in mtlite's parameter order."""
        have = self._mtlite_params()
        return collections.OrderedDict(
            (name, have[name].detach().to(torch.float32)) for name in parameter_shapes(self.spec))

    def load_mtlite_state_dict(self, weights: dict):
        """Loads {mtlite name: tensor}; every parameter must be present with its shape. Keys may
        carry the prefixes of DistributedDataParallel ("module.") and torch.compile ("_orig_mod.")."""
        weights = strip_wrapper_prefixes(weights)
        have = self._mtlite_params()
        missing = sorted(set(have) - set(weights))
        extra = sorted(set(weights) - set(have))
        if missing or extra:
            raise KeyError(f"mtlite weights: {_name_list('missing', missing)}{_name_list('unexpected', extra)}".rstrip("; "))
        with torch.no_grad():
            for name, p in have.items():
                t = torch.as_tensor(weights[name])
                if tuple(t.shape) != tuple(p.shape):
                    raise ValueError(f"mtlite weights: {name} has shape {tuple(t.shape)}, expected {tuple(p.shape)}")
                p.copy_(t)

    def load_state_dict(self, state_dict, strict: bool = True):
        """nn.Module.load_state_dict, for a state dict saved from this model or from a
        DistributedDataParallel or torch.compile wrapper of it: their "module." and "_orig_mod."
        prefixes are stripped. Errors name the first few missing and unexpected keys."""
        state_dict = strip_wrapper_prefixes(state_dict)
        if strict:
            have = set(self.state_dict())
            missing, extra = sorted(have - set(state_dict)), sorted(set(state_dict) - have)
            if missing or extra:
                raise KeyError(f"state dict: {_name_list('missing', missing)}{_name_list('unexpected', extra)}".rstrip("; "))
            for key, p in self.state_dict().items():
                if tuple(state_dict[key].shape) != tuple(p.shape):
                    raise ValueError(f"state dict: {key} has shape {tuple(state_dict[key].shape)}, "
                                     f"the model's is {tuple(p.shape)}")
        return super().load_state_dict(state_dict, strict)

    @torch.no_grad()
    def reset_parameters(self, seed: int = 0, bias_range: float = 0.0):
        """Seeded initial weights; each tensor draws from its own generator seeded by
        mix64(seed ^ hash_string(name)), so experts differ and adding a tensor changes no other."""
        have = self._mtlite_params()
        for name, (shape, role, act) in parameter_shapes(self.spec).items():
            g = torch.Generator().manual_seed(mix64((seed & MASK64) ^ hash_string(name)))
            if role == "embedding":
                a = math.sqrt(3.0 / shape[1])
            elif role == "weight":
                fan_out, fan_in = shape
                a = math.sqrt(6.0 / fan_in) if act == "relu" else math.sqrt(6.0 / (fan_in + fan_out))
            else:
                a = bias_range
            p = have[name]
            if a == 0:
                p.zero_()
            else:
                p.uniform_(-a, a, generator=g)

    # --- forward -----------------------------------------------------------------------------

    def _rows(self, f, ids):
        ids = torch.as_tensor(ids, dtype=torch.int64)
        size = f["size"]
        if f["mapping"] == "vocabulary":
            return torch.where((ids >= 0) & (ids < size), ids, torch.full_like(ids, size))
        rows = [mix64(i) % size for i in ids.reshape(-1).tolist()]
        return torch.tensor(rows, dtype=torch.int64, device=ids.device).reshape(ids.shape)

    def input_vector(self, dense=None, ids=None, bags=None):
        """x = concat(embeddings in spec order, normalised dense features in spec order)."""
        n_dense = sum(f["kind"] == "dense" for f in self._features)
        n_cat = sum(f["kind"] == "categorical" for f in self._features)
        n_bag = sum(f["kind"] == "multi_hot" for f in self._features)
        bags = list(bags) if bags is not None else []
        rows = None
        if dense is not None:
            dense = torch.as_tensor(dense, dtype=torch.float32)
            rows = dense.shape[0]
        if ids is not None:
            ids = torch.as_tensor(ids, dtype=torch.int64)
            rows = ids.shape[0] if rows is None else rows
        if rows is None and bags:
            rows = len(bags[0][1]) - 1
        if rows is None:
            raise ValueError("input_vector: no input given")
        if n_dense and (dense is None or tuple(dense.shape) != (rows, n_dense)):
            raise ValueError(f"dense: expected shape ({rows}, {n_dense})")
        if n_cat and (ids is None or tuple(ids.shape) != (rows, n_cat)):
            raise ValueError(f"ids: expected shape ({rows}, {n_cat})")
        if len(bags) != n_bag:
            raise ValueError(f"bags: expected {n_bag}, one per multi-hot feature")
        parts, ci, bi = [], 0, 0
        for f in self._features:
            if f["kind"] == "categorical":
                table = self.embedding[_escape(f["name"])]
                parts.append(F.embedding(self._rows(f, ids[:, ci]).to(table.device), table))
                ci += 1
            elif f["kind"] == "multi_hot":
                table = self.embedding[_escape(f["name"])]
                bag_ids, offsets = bags[bi]
                offsets = torch.as_tensor(offsets, dtype=torch.int64)
                if offsets.shape != (rows + 1,):
                    raise ValueError(f"bag {f['name']!r}: expected {rows + 1} offsets")
                parts.append(F.embedding_bag(self._rows(f, bag_ids).to(table.device), table,
                                             offsets.to(table.device),
                                             mode=f["pooling"], include_last_offset=True))
                bi += 1
        di = 0
        for f in self._features:
            if f["kind"] != "dense":
                continue
            v = dense[:, di].to(self._device())
            if "log1p" in f["normalization"]:
                v = torch.sign(v) * torch.log1p(torch.abs(v))
            if "standardize" in f["normalization"]:
                v = (v - f["mean"]) / f["stddev"]
            parts.append(v.unsqueeze(1))
            di += 1
        return torch.cat(parts, dim=1)

    def _device(self):
        return next(iter(self.parameters())).device

    @staticmethod
    def _mix(gate_logits, experts):
        g = torch.softmax(gate_logits, dim=1)
        return sum(g[:, e:e + 1] * h for e, h in enumerate(experts))

    def forward(self, dense=None, ids=None, bags=None):
        x = self.input_vector(dense, ids, bags)
        spec = self.spec
        T = len(spec["tasks"])
        arch = spec["architecture"]
        tower_in = [x] * T
        if arch == "shared_bottom":
            tower_in = [self.bottom(x)] * T
        elif arch in ("omoe", "mmoe"):
            experts = [getattr(self, f"expert{e}")(x) for e in range(spec["experts"])]
            if arch == "omoe":
                tower_in = [self._mix(self.gate(x), experts)] * T
            else:
                tower_in = [self._mix(getattr(self, f"gate{k}")(x), experts) for k in range(T)]
        elif arch == "ple":
            shared_in = x
            for l, lv in enumerate(spec["levels"]):
                level = getattr(self, f"ple{l}")
                own = [[level[f"task{k}"][f"expert{j}"](tower_in[k]) for j in range(lv["task_experts"])]
                       for k in range(T)]
                shared = [level["shared"][f"expert{j}"](shared_in) for j in range(lv["shared_experts"])]
                nxt = [self._mix(level[f"task{k}"]["gate"](tower_in[k]), own[k] + shared)
                       for k in range(T)]
                if "gate" in level["shared"]:
                    every = [h for hs in own for h in hs] + shared
                    shared_in = self._mix(level["shared"]["gate"](shared_in), every)
                tower_in = nxt
        out = collections.OrderedDict()
        for k, t in enumerate(spec["tasks"]):
            out[t["name"]] = getattr(self, f"tower{k}")(tower_in[k]).squeeze(1)
        if "esmm" in spec:
            e = spec["esmm"]
            out[e["ctcvr"]] = out[e["ctr"]] * out[e["cvr"]]
        return out


def _name_list(what, names, shown=5):
    if not names:
        return ""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{what} {', '.join(repr(n) for n in names[:shown])}{more}; "


_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def strip_wrapper_prefixes(state_dict) -> "collections.OrderedDict":
    """The state dict with the key prefixes that wrappers add removed, however nested:
    "module." (DistributedDataParallel, DataParallel) and "_orig_mod." (torch.compile)."""
    out = collections.OrderedDict()
    for key, value in state_dict.items():
        name = key
        while name.startswith(_WRAPPER_PREFIXES):
            name = name.split(".", 1)[1]
        if name in out:
            raise KeyError(f"state dict: two keys name {name!r} once their wrapper prefixes are removed")
        out[name] = value
    return out


def unwrap(model) -> "MtliteModel":
    """The MtliteModel inside DistributedDataParallel, DataParallel (.module) and torch.compile
    (._orig_mod) wrappers, however nested; the model itself when it is one."""
    inner = model
    for _ in range(16):
        if isinstance(inner, MtliteModel):
            return inner
        if isinstance(inner, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            inner = inner.module
        elif isinstance(getattr(inner, "_orig_mod", None), nn.Module):
            inner = inner._orig_mod
        else:
            break
    raise TypeError(f"expected an MtliteModel, or a DistributedDataParallel, DataParallel or torch.compile "
                    f"wrapper of one; got {type(model).__name__}")


def make_batch(spec, rows):
    """(dense, ids, bags) in mtlite's layout from rows given as {feature name: value}: a float for
    a dense feature, an int or (hashed features) a str for a categorical one, a list of those for
    a multi-hot one. Strings become hash_string(text) as mtlite expects."""
    spec = canonical_spec(spec)
    dense, ids = [], []
    bag_features = [f for f in spec["features"] if f["kind"] == "multi_hot"]
    bag_ids = [[] for _ in bag_features]
    offsets = [[0] for _ in bag_features]

    def one_id(f, v):
        if isinstance(v, (str, bytes)) and f["mapping"] != "hashing":
            raise TypeError(f"feature {f['name']!r}: a string id needs a hashed feature")
        return id_of(v)

    for r, row in enumerate(rows):
        dense_row, id_row, bi = [], [], 0
        for f in spec["features"]:
            if f["name"] not in row:
                raise KeyError(f"row {r}: missing feature {f['name']!r}")
            v = row[f["name"]]
            if f["kind"] == "dense":
                dense_row.append(float(v))
            elif f["kind"] == "categorical":
                id_row.append(one_id(f, v))
            else:
                bag_ids[bi].extend(one_id(f, u) for u in v)
                offsets[bi].append(len(bag_ids[bi]))
                bi += 1
        dense.append(dense_row)
        ids.append(id_row)
    n = len(rows)
    n_dense = sum(f["kind"] == "dense" for f in spec["features"])
    n_cat = sum(f["kind"] == "categorical" for f in spec["features"])
    dense_t = torch.tensor(dense, dtype=torch.float32).reshape(n, n_dense)
    ids_t = torch.tensor(ids, dtype=torch.int64).reshape(n, n_cat)
    bags = [(torch.tensor(b, dtype=torch.int64), torch.tensor(o, dtype=torch.int64))
            for b, o in zip(bag_ids, offsets)]
    return dense_t, ids_t, bags


def multitask_loss(spec, outputs, labels, masks=None, sample_weight=None):
    """docs/models.md's total loss: sum_k w_k * (sum_i m_ik s_i l_k) / (sum_i m_ik s_i), log loss for
    binary tasks and squared error for regression. Under an esmm block the cvr task has no loss
    of its own; the ctcvr output is trained on labels[ctcvr] (default: ctr label * cvr label)
    with the cvr task's loss_weight. labels/masks: {name: Tensor[B]}; a missing mask is all ones."""
    spec = canonical_spec(spec)
    terms = []  # (output name, label, kind, weight)
    esmm = spec.get("esmm")
    for t in spec["tasks"]:
        if esmm and t["name"] == esmm["cvr"]:
            continue
        terms.append((t["name"], labels[t["name"]], t["kind"], t["loss_weight"]))
    if esmm:
        y = labels.get(esmm["ctcvr"])
        if y is None:
            y = labels[esmm["ctr"]] * labels[esmm["cvr"]]
        w = next(t["loss_weight"] for t in spec["tasks"] if t["name"] == esmm["cvr"])
        terms.append((esmm["ctcvr"], y, "binary", w))
    total = 0.0
    for name, y, kind, w in terms:
        p = outputs[name]
        y = torch.as_tensor(y, dtype=p.dtype)
        m = torch.ones_like(p) if masks is None or name not in masks else torch.as_tensor(masks[name], dtype=p.dtype)
        if sample_weight is not None:
            m = m * torch.as_tensor(sample_weight, dtype=p.dtype)
        if kind == "binary":
            l = F.binary_cross_entropy(p.clamp(1e-7, 1 - 1e-7), y, reduction="none")
        else:
            l = (p - y) ** 2
        total = total + w * (m * l).sum() / m.sum().clamp_min(1e-12)
    return total


# ---------------------------------------------------------------------------------------------
# safetensors, written directly.

_DTYPES = {"F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2),
           "F64": (torch.float64, 8), "I64": (torch.int64, 8), "U8": (torch.uint8, 1)}


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().to("cpu", torch.float32).contiguous()
    try:
        import numpy  # noqa: F401  (torch's .numpy() needs it)
        data = t.numpy().astype("<f4", copy=False).tobytes()
    except ImportError:
        data = struct.pack(f"<{t.numel()}f", *t.reshape(-1).tolist())
    return data


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} as F32 in the given order: an 8-byte little-endian header length,
    the JSON header (padded with spaces to a multiple of 8), then the raw little-endian data,
    offsets relative to the data's start."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = _tensor_bytes(t)
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("safetensors metadata: keys and values must be strings")
        header["__metadata__"] = dict(metadata)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read_safetensors(path, as_float: bool = True):
    """({name: tensor}, metadata) from a .safetensors file with F32/F16/BF16/F64 tensors, as
    float32, or (as_float=False) also I64 and U8 ones, each in its own dtype (a convenience
    reader: mtlite's own, offline/convert/safetensors.hpp, is the strict one)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError(f"{path}: header length {n} reaches past the end of the file")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    metadata = header.pop("__metadata__", {})
    out = collections.OrderedDict()
    for name, info in header.items():
        if info["dtype"] not in _DTYPES or (as_float and not _DTYPES[info["dtype"]][0].is_floating_point):
            raise ValueError(f"{path}: tensor {name!r} has dtype {info['dtype']}, which this reader does not take")
        dtype, size = _DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        numel = math.prod(info["shape"])
        if end - begin != numel * size or end > len(data):
            raise ValueError(f"{path}: tensor {name!r} has bad data_offsets")
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype) if numel else torch.empty(0, dtype=dtype)
        if sys.byteorder == "big":
            raise NotImplementedError("read_safetensors: big-endian hosts")
        t = t.reshape(info["shape"])
        out[name] = t.to(torch.float32) if as_float else t
    return out, metadata


def export(model: MtliteModel, spec=None, path_prefix=None, metadata=None):
    """Writes <prefix>.safetensors (every parameter as F32 under its mtlite name, in mtlite's
    order) and <prefix>.json (the canonical spec plus "tensors", the identity map here, plus the
    data bindings of the model.json the model was built from, or of `spec`, when it has them:
    `mtlite convert --calib`, `eval` and `predict` then read raw CSV rows for it). model may be
    wrapped in DistributedDataParallel, DataParallel or torch.compile. spec, when given, must be
    the model's spec. Returns (json path, safetensors path)."""
    if path_prefix is None:
        raise TypeError("export: path_prefix is required")
    model = unwrap(model)
    bindings = model.bindings
    if spec is not None:
        if canonical_spec(spec) != model.spec:
            raise ValueError("export: the spec given is not the model's spec")
        bindings = split_model_json(spec)[1] or bindings
    path_prefix = os.fspath(path_prefix)
    weights = model.mtlite_state_dict()
    for name, t in weights.items():
        if not torch.isfinite(t).all():
            raise ValueError(f"export: {name} has a non-finite value")
    meta = {"format": "pt", "producer": "mtlite_torch"}
    meta.update(metadata or {})
    st_path, json_path = path_prefix + ".safetensors", path_prefix + ".json"
    write_safetensors(st_path, weights, meta)
    doc = _with_bindings(model.spec, bindings)
    doc["tensors"] = collections.OrderedDict((name, name) for name in weights)
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False, allow_nan=False)
        f.write("\n")
    return json_path, st_path


def load(path_prefix) -> MtliteModel:
    """The model export() wrote (model.json + .safetensors), as an MtliteModel."""
    path_prefix = os.fspath(path_prefix)
    with open(path_prefix + ".json", encoding="utf-8") as f:
        doc = json.load(f)
    tensors, _ = read_safetensors(path_prefix + ".safetensors")
    model = MtliteModel(doc)
    mapping = doc.get("tensors")
    if not isinstance(mapping, dict):
        raise ValueError(f"{path_prefix}.json: missing the 'tensors' map")
    for name, stored in mapping.items():
        if stored not in tensors:
            raise KeyError(f"tensors: {name!r} maps to {stored!r}, which the file does not hold")
    model.load_mtlite_state_dict({name: tensors[stored] for name, stored in mapping.items()})
    return model


# ---------------------------------------------------------------------------------------------
# Rows encoded by `mtlite encode`: the ids and values mtlite's own data layer reads from CSV.

RowBatch = collections.namedtuple("RowBatch", "dense ids bags labels masks weights groups")
RowBatch.__doc__ = """Rows of EncodedRows: model(batch.dense, batch.ids, batch.bags) scores them and
multitask_loss(spec, outputs, batch.labels, batch.masks, batch.weights) is their loss. labels and
masks are {task name: Tensor[B]} (float32; mask 1 = labelled), weights float32 [B], groups int64 [B]."""


class EncodedRows(torch.utils.data.Dataset):
    """One DIR/NAME.safetensors that `mtlite encode` wrote: a file's rows read by the data layer
    of `mtlite train`, `eval` and `predict` (vocabularies, fill values, hashing, bags), so that a
    model trained on them sees exactly the ids and values that the runtime will feed it. Train the
    model built from DIR/model.json (MtliteModel(json.load(...))) on them, and export() writes
    that file's bindings back beside the weights.

    An index dataset: rows[i] is i, and batch(indices) (the collate_fn) gathers a RowBatch, so a
    DataLoader with any sampler (DistributedSampler included) yields whole batches cheaply:

        rows = mt.EncodedRows("enc/train.safetensors", spec)
        loader = DataLoader(rows, batch_size=256, shuffle=True, collate_fn=rows.batch)

    spec, when given, must have the features and tasks of the file (names and order)."""

    def __init__(self, path, spec=None):
        path = os.fspath(path)
        tensors, meta = read_safetensors(path, as_float=False)
        if meta.get("format") != "mtlite-rows" or meta.get("version") != "1":
            raise ValueError(f"{path}: not rows written by mtlite encode (format 'mtlite-rows', version 1)")
        self.path = path
        self.names = {k: json.loads(meta[k]) for k in ("dense", "categorical", "multi_hot", "tasks")}
        self.dense, self.ids = tensors["dense"], tensors["ids"]
        self.bags = [(tensors[f"bag.{n}.ids"], tensors[f"bag.{n}.offsets"]) for n in self.names["multi_hot"]]
        self.labels, self.mask = tensors["labels"], tensors["mask"]
        self.weights, self.groups = tensors["weights"], tensors["groups"]
        if spec is not None:
            self.check(spec)

    def check(self, spec):
        """Raises ValueError unless `spec` (a spec or model.json) has this file's features and tasks."""
        spec = canonical_spec(spec)
        want = {kind: [f["name"] for f in spec["features"] if f["kind"] == kind]
                for kind in ("dense", "categorical", "multi_hot")}
        want["tasks"] = [t["name"] for t in spec["tasks"]]
        for kind, names in want.items():
            if names != self.names[kind]:
                raise ValueError(f"{self.path}: its {kind} columns are {self.names[kind]}, the spec's {names}")

    def __len__(self):
        return self.dense.shape[0]

    def __getitem__(self, i):
        return i

    def batch(self, indices) -> RowBatch:
        """The rows at `indices` (any order, repeats allowed) as a RowBatch."""
        idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        bags = []
        for bag_ids, offsets in self.bags:
            start, length = offsets[idx], offsets[idx + 1] - offsets[idx]
            new_offsets = torch.zeros(len(idx) + 1, dtype=torch.int64)
            torch.cumsum(length, 0, out=new_offsets[1:])
            # item j of the batch's bag list comes from start[row] + (j - new_offsets[row])
            src = torch.repeat_interleave(start - new_offsets[:-1], length) + torch.arange(int(new_offsets[-1]))
            bags.append((bag_ids[src], new_offsets))
        labels, mask = self.labels[idx], self.mask[idx].to(torch.float32)
        tasks = self.names["tasks"]
        return RowBatch(self.dense[idx], self.ids[idx], bags,
                        {t: labels[:, k] for k, t in enumerate(tasks)}, {t: mask[:, k] for k, t in enumerate(tasks)},
                        self.weights[idx], self.groups[idx])
