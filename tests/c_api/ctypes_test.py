"""The C API from Python's ctypes (the standard library alone): libmtlite_c scores the rows of a CSV
file as `mtlite predict` scored them, from the raw fields, through the model's own binding.

    ctypes_test.py LIBRARY MODEL.mtl ROWS.csv SCORES.csv

SCORES.csv is what `mtlite predict MODEL.mtl --data ROWS.csv` wrote (tests/c_api/make_model.sh),
printed to 9 digits (a float exactly). The library and the command are two programs of one build
running the same kernels, but the compiler may round their inline code differently (FMA
contraction, instrumented builds): the scores must agree within 1e-6, as examples/web's do with
mtlite predict (scripts/test-wasm.sh); a wrong input moves them by orders of magnitude more.
Then two error paths: a missing file and a NaN feature, each with its status and message.
"""
import csv
import ctypes as C
import math
import struct
import sys

OK, INVALID_ARGUMENT, IO = 0, 2, 5
DENSE, CATEGORICAL, MULTI_HOT = 0, 1, 2

lib_path, model_path, rows_path, scores_path = sys.argv[1:5]
lib = C.CDLL(lib_path)
size_p = C.POINTER(C.c_size_t)
for name, args in {
    "mtlite_model_open": [C.c_char_p, C.c_uint32, C.POINTER(C.c_void_p), C.c_char_p, C.c_size_t],
    "mtlite_model_free": [C.c_void_p],
    "mtlite_model_feature_count": [C.c_void_p, size_p],
    "mtlite_model_feature_name": [C.c_void_p, C.c_size_t, C.POINTER(C.c_char_p)],
    "mtlite_model_feature_kind": [C.c_void_p, C.c_size_t, C.POINTER(C.c_int)],
    "mtlite_model_output_count": [C.c_void_p, size_p],
    "mtlite_model_output_name": [C.c_void_p, C.c_size_t, C.POINTER(C.c_char_p)],
    "mtlite_model_id_string": [C.c_void_p, C.c_size_t, C.c_char_p, C.POINTER(C.c_int64)],
    "mtlite_model_bag_ids": [C.c_void_p, C.c_size_t, C.c_char_p, C.POINTER(C.c_int64), C.c_size_t, size_p],
    "mtlite_session_new": [C.c_void_p, C.c_size_t, C.c_uint32, C.POINTER(C.c_void_p)],
    "mtlite_session_free": [C.c_void_p],
    "mtlite_session_set_dense": [C.c_void_p, C.c_size_t, C.POINTER(C.c_float), C.c_size_t],
    "mtlite_session_set_ids": [C.c_void_p, C.c_size_t, C.POINTER(C.c_int64), C.c_size_t],
    "mtlite_session_set_bags": [C.c_void_p, C.c_size_t, C.POINTER(C.c_int64), C.c_size_t, C.POINTER(C.c_uint32),
                                C.c_size_t],
    "mtlite_session_predict": [C.c_void_p, C.c_size_t],
    "mtlite_session_scores_by_name": [C.c_void_p, C.c_char_p, C.POINTER(C.POINTER(C.c_float)), size_p],
}.items():
    fn = getattr(lib, name)
    fn.argtypes, fn.restype = args, C.c_int
lib.mtlite_session_last_error.argtypes, lib.mtlite_session_last_error.restype = [C.c_void_p], C.c_char_p
lib.mtlite_model_last_error.argtypes, lib.mtlite_model_last_error.restype = [C.c_void_p], C.c_char_p
lib.mtlite_status_name.argtypes, lib.mtlite_status_name.restype = [C.c_int], C.c_char_p

failures = 0


def check(ok, what):
    global failures
    print(("ok   " if ok else "FAIL ") + what)
    failures += not ok


def call(status, what, handle_error=None):
    """Raises on a status other than OK, with the library's message."""
    if status != OK:
        raise RuntimeError(f"{what}: {lib.mtlite_status_name(status).decode()}: "
                           f"{handle_error().decode() if handle_error else ''}")


def as_f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


error = C.create_string_buffer(512)
model = C.c_void_p()
call(lib.mtlite_model_open(model_path.encode(), 0, C.byref(model), error, len(error)), "open " + error.value.decode())
model_error = lambda: lib.mtlite_model_last_error(model)  # noqa: E731

n = C.c_size_t()
call(lib.mtlite_model_feature_count(model, C.byref(n)), "feature_count", model_error)
features = []
for f in range(n.value):
    name, kind = C.c_char_p(), C.c_int()
    call(lib.mtlite_model_feature_name(model, f, C.byref(name)), "feature_name", model_error)
    call(lib.mtlite_model_feature_kind(model, f, C.byref(kind)), "feature_kind", model_error)
    features.append((name.value.decode(), kind.value))
call(lib.mtlite_model_output_count(model, C.byref(n)), "output_count", model_error)
outputs = []
for o in range(n.value):
    name = C.c_char_p()
    call(lib.mtlite_model_output_name(model, o, C.byref(name)), "output_name", model_error)
    outputs.append(name.value.decode())
check({k for _, k in features} == {DENSE, CATEGORICAL, MULTI_HOT}, "the model has dense, categorical and multi-hot features")

with open(rows_path, newline="") as f:
    rows = list(csv.DictReader(f))
with open(scores_path, newline="") as f:
    reader = csv.reader(f)
    header = next(reader)
    expected = [[as_f32(float(x)) for x in line] for line in reader]
check(header == outputs, f"mtlite predict's columns are the model's outputs {outputs}")
check(len(expected) == len(rows) > 0, f"{len(rows)} rows, one line of scores each")

session = C.c_void_p()
call(lib.mtlite_session_new(model, len(rows), 0, C.byref(session)), "session_new", model_error)
session_error = lambda: lib.mtlite_session_last_error(session)  # noqa: E731

# Every column from the raw text, through the model's binding, as the trainer read its file.
for f, (name, kind) in enumerate(features):
    fields = [row[name] for row in rows]
    if kind == DENSE:
        values = (C.c_float * len(rows))(*[float(x) for x in fields])
        call(lib.mtlite_session_set_dense(session, f, values, len(rows)), name, session_error)
    elif kind == CATEGORICAL:
        ids, one = (C.c_int64 * len(rows))(), C.c_int64()
        for r, x in enumerate(fields):
            call(lib.mtlite_model_id_string(model, f, x.encode(), C.byref(one)), name, model_error)
            ids[r] = one.value
        call(lib.mtlite_session_set_ids(session, f, ids, len(rows)), name, session_error)
    else:
        bag, offsets, buf, count = [], [0], (C.c_int64 * 16)(), C.c_size_t()
        for x in fields:
            call(lib.mtlite_model_bag_ids(model, f, x.encode(), buf, 16, C.byref(count)), name, model_error)
            bag += buf[:count.value]
            offsets.append(len(bag))
        call(lib.mtlite_session_set_bags(session, f, (C.c_int64 * max(1, len(bag)))(*bag), len(bag),
                                         (C.c_uint32 * len(offsets))(*offsets), len(rows)), name, session_error)
call(lib.mtlite_session_predict(session, len(rows)), "predict", session_error)

got = {}
for o in outputs:
    p, count = C.POINTER(C.c_float)(), C.c_size_t()
    call(lib.mtlite_session_scores_by_name(session, o.encode(), C.byref(p), C.byref(count)), o, session_error)
    got[o] = p[:count.value]
    want = [line[outputs.index(o)] for line in expected]
    diffs = [abs(a - b) for a, b in zip(got[o], want)]
    worst = max(range(len(diffs)), key=diffs.__getitem__)
    check(len(got[o]) == len(rows) and diffs[worst] <= 1e-6,
          f"{o}: the {len(rows)} scores equal mtlite predict's within 1e-6 ({sum(d == 0 for d in diffs)} exactly; "
          f"largest difference {diffs[worst]:.3g} at row {worst}: {got[o][worst]!r} vs {want[worst]!r})")
check(len(set(got[outputs[0]])) > len(rows) // 2, "the rows' scores differ: the inputs reach the model")

# Errors: a missing file, a NaN feature.
status = lib.mtlite_model_open(b"/nonexistent/model.mtl", 0, C.byref(C.c_void_p()), error, len(error))
check(status == IO and b"/nonexistent/model.mtl" in error.value, f"a missing file: IO, naming it ({error.value.decode()})")
dense = next(f for f, (_, kind) in enumerate(features) if kind == DENSE)
values = (C.c_float * len(rows))(*([1.0] * (len(rows) - 1) + [math.nan]))
call(lib.mtlite_session_set_dense(session, dense, values, len(rows)), "set NaN", session_error)
status = lib.mtlite_session_predict(session, len(rows))
message = session_error().decode()
check(status == INVALID_ARGUMENT and f"'{features[dense][0]}' is NaN at row {len(rows) - 1}" in message,
      f"a NaN feature: INVALID_ARGUMENT, naming it and its row ({message})")

lib.mtlite_session_free(session)
check(lib.mtlite_model_free(model) == OK, "the model is freed")
print(f"{failures} failed")
sys.exit(1 if failures else 0)
