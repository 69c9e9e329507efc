"""Ranking candidates from Python through the C API (include/mtlite.h) with ctypes, the standard
library alone: open a model, list its outputs and features, turn raw values into the ids training
gave them, set the inputs by feature name, predict, print the best candidates. As examples/c/rank.c.

    python3 examples/python/rank.py LIBRARY MODEL.mtl [candidates]     (default 20)

LIBRARY is libmtlite_c's shared library: build/src/c_api/libmtlite_c.so in a build folder, or
ctypes.util.find_library("mtlite_c") once installed. MODEL.mtl has the features of
tests/c_api/model.json (device, item_id, sku, tags, price, discount). Every call is checked; a
failure prints the library's message and exits with 1.
"""
import ctypes as C
import sys

OK = 0
KINDS = ["dense", "categorical", "multi-hot"]
TOP = 5


class MtliteError(Exception):
    pass


def bind(lib):
    """Declares the signatures used here: ctypes would otherwise pass sizes and pointers as int."""
    size_p, char_pp = C.POINTER(C.c_size_t), C.POINTER(C.c_char_p)
    for name, args in {
        "mtlite_model_open": [C.c_char_p, C.c_uint32, C.POINTER(C.c_void_p), C.c_char_p, C.c_size_t],
        "mtlite_model_free": [C.c_void_p],
        "mtlite_model_output_count": [C.c_void_p, size_p],
        "mtlite_model_output_name": [C.c_void_p, C.c_size_t, char_pp],
        "mtlite_model_feature_count": [C.c_void_p, size_p],
        "mtlite_model_feature_name": [C.c_void_p, C.c_size_t, char_pp],
        "mtlite_model_feature_kind": [C.c_void_p, C.c_size_t, C.POINTER(C.c_int)],
        "mtlite_model_feature_index": [C.c_void_p, C.c_char_p, size_p],
        "mtlite_model_id_string": [C.c_void_p, C.c_size_t, C.c_char_p, C.POINTER(C.c_int64)],
        "mtlite_model_id_int": [C.c_void_p, C.c_size_t, C.c_int64, C.POINTER(C.c_int64)],
        "mtlite_model_bag_ids": [C.c_void_p, C.c_size_t, C.c_char_p, C.POINTER(C.c_int64), C.c_size_t, size_p],
        "mtlite_session_new": [C.c_void_p, C.c_size_t, C.c_uint32, C.POINTER(C.c_void_p)],
        "mtlite_session_free": [C.c_void_p],
        "mtlite_session_set_dense_by_name": [C.c_void_p, C.c_char_p, C.POINTER(C.c_float), C.c_size_t],
        "mtlite_session_set_ids_by_name": [C.c_void_p, C.c_char_p, C.POINTER(C.c_int64), C.c_size_t],
        "mtlite_session_set_bags_by_name": [C.c_void_p, C.c_char_p, C.POINTER(C.c_int64), C.c_size_t,
                                            C.POINTER(C.c_uint32), C.c_size_t],
        "mtlite_session_predict": [C.c_void_p, C.c_size_t],
        "mtlite_session_scores": [C.c_void_p, C.c_size_t, C.POINTER(C.POINTER(C.c_float)), size_p],
    }.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, C.c_int
    for name, args in {"mtlite_version": [], "mtlite_kernel_level": [], "mtlite_status_name": [C.c_int],
                       "mtlite_model_last_error": [C.c_void_p], "mtlite_session_last_error": [C.c_void_p]}.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, C.c_char_p


def main(argv):
    if len(argv) not in (3, 4) or (len(argv) == 4 and not (argv[3].isdigit() and 1 <= int(argv[3]) <= 256)):
        print("usage: rank.py LIBRARY MODEL.mtl [candidates 1..256]", file=sys.stderr)
        return 2
    lib = C.CDLL(argv[1])
    bind(lib)
    n = int(argv[3]) if len(argv) == 4 else 20
    model, session = C.c_void_p(), C.c_void_p()

    def check(status, what, message):
        """Raises with the status's name and the library's message unless the call succeeded."""
        if status != OK:
            raise MtliteError(f"{what}: {lib.mtlite_status_name(status).decode()}: {message().decode()}")

    def on_model(status, what):  # the calling thread's last failure on the model
        check(status, what, lambda: lib.mtlite_model_last_error(model))

    def on_session(status, what):
        check(status, what, lambda: lib.mtlite_session_last_error(session))

    error = C.create_string_buffer(512)
    try:
        # The self-test at open (MTLITE_OPEN_SELFTEST): the scores the converter recorded must come out.
        check(lib.mtlite_model_open(argv[2].encode(), 2, C.byref(model), error, len(error)), "open",
              lambda: error.value)
        count, name, kind = C.c_size_t(), C.c_char_p(), C.c_int()
        on_model(lib.mtlite_model_output_count(model, C.byref(count)), "outputs")
        outputs = []
        for o in range(count.value):
            on_model(lib.mtlite_model_output_name(model, o, C.byref(name)), "output name")
            outputs.append(name.value.decode())
        on_model(lib.mtlite_model_feature_count(model, C.byref(count)), "features")
        features = []
        for f in range(count.value):
            on_model(lib.mtlite_model_feature_name(model, f, C.byref(name)), "feature name")
            on_model(lib.mtlite_model_feature_kind(model, f, C.byref(kind)), "feature kind")
            features.append(f"{name.value.decode()} ({KINDS[kind.value]})")
        print(f"{argv[2]} (mtlite {lib.mtlite_version().decode()}, kernels {lib.mtlite_kernel_level().decode()}): "
              f"outputs {' '.join(outputs)}; features {' '.join(features)}")

        # Raw values to ids, by the rules training stored in the model (its data binding).
        index = {}
        for feature in ["device", "item_id", "sku", "tags"]:
            i = C.c_size_t()
            on_model(lib.mtlite_model_feature_index(model, feature.encode(), C.byref(i)), feature)
            index[feature] = i.value
        items = [c * 7 % 200 for c in range(n)]
        device_ids, item_ids, sku_ids = (C.c_int64 * n)(), (C.c_int64 * n)(), (C.c_int64 * n)()
        tag_ids, tag_offsets, bag, in_bag = [], [0], (C.c_int64 * 4)(), C.c_size_t()
        for c, item in enumerate(items):
            one = C.c_int64()
            on_model(lib.mtlite_model_id_string(model, index["device"], b"mobile", C.byref(one)), "device id")
            device_ids[c] = one.value
            on_model(lib.mtlite_model_id_int(model, index["item_id"], item, C.byref(one)), "item id")
            item_ids[c] = one.value
            on_model(lib.mtlite_model_id_string(model, index["sku"], f"sku-{item}".encode(), C.byref(one)), "sku id")
            sku_ids[c] = one.value
            field = f"c{item % 6}|h{c % 4}".encode()
            on_model(lib.mtlite_model_bag_ids(model, index["tags"], field, bag, len(bag), C.byref(in_bag)), "tag ids")
            tag_ids += bag[:in_bag.value]
            tag_offsets.append(len(tag_ids))
        prices = (C.c_float * n)(*[5.0 + (c % 9) * 2.5 for c in range(n)])
        discounts = (C.c_float * n)(*[(c % 4) / 10 for c in range(n)])

        # One session, the columns set by feature name, one predict for all candidates.
        on_model(lib.mtlite_session_new(model, n, 0, C.byref(session)), "session")
        on_session(lib.mtlite_session_set_ids_by_name(session, b"device", device_ids, n), "device")
        on_session(lib.mtlite_session_set_ids_by_name(session, b"item_id", item_ids, n), "item_id")
        on_session(lib.mtlite_session_set_ids_by_name(session, b"sku", sku_ids, n), "sku")
        on_session(lib.mtlite_session_set_bags_by_name(session, b"tags", (C.c_int64 * max(1, len(tag_ids)))(*tag_ids),
                                                       len(tag_ids), (C.c_uint32 * (n + 1))(*tag_offsets), n), "tags")
        on_session(lib.mtlite_session_set_dense_by_name(session, b"price", prices, n), "price")
        on_session(lib.mtlite_session_set_dense_by_name(session, b"discount", discounts, n), "discount")
        on_session(lib.mtlite_session_predict(session, n), "predict")

        # The best by the first output, each score checked.
        p, rows = C.POINTER(C.c_float)(), C.c_size_t()
        on_session(lib.mtlite_session_scores(session, 0, C.byref(p), C.byref(rows)), "scores")
        scores = p[:rows.value]
        for c, s in enumerate(scores):
            if not 0.0 <= s <= 1.0:
                raise MtliteError(f"{outputs[0]}: not a probability: candidate {c} scored {s}")
        best = sorted(range(len(scores)), key=lambda c: (-scores[c], c))[:TOP]
        print(f"top {len(best)} of {len(scores)} candidates by {outputs[0]}:")
        for c in best:
            print(f"  item {items[c]:3d}  {scores[c]:.4f}")
    except MtliteError as e:
        print(f"rank.py: {e}", file=sys.stderr)
        return 1
    finally:
        lib.mtlite_session_free(session)
        if lib.mtlite_model_free(model) != OK:
            print("rank.py: cannot free the model", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
