/* mtlite's C API: open a .mtl model, turn raw values into the ids it was trained with, score
 * batches of rows. C99, for C programs and for every language with a C foreign-function
 * interface (Python ctypes, Go cgo, Rust, Swift, JNI...). One library, libmtlite_c (static and
 * shared; pkg-config mtlite-c), built over the C++ headers in include/mtlite/, with the kernels
 * picked for the CPU at run time (MTLITE_KERNELS=<level> forces one).
 *
 *   mtlite_model* model;
 *   char error[256];
 *   if (mtlite_model_open("model.mtl", 0, &model, error, sizeof error) != MTLITE_OK) die(error);
 *   mtlite_session* session;
 *   mtlite_session_new(model, 256, 0, &session);               // one per thread
 *   mtlite_session_set_dense_by_name(session, "price", prices, rows);
 *   mtlite_session_set_ids_by_name(session, "item_id", items, rows);
 *   if (mtlite_session_predict(session, rows) != MTLITE_OK) die(mtlite_session_last_error(session));
 *   const float* p; size_t n;
 *   mtlite_session_scores_by_name(session, "click", &p, &n);    // n == rows
 *   mtlite_session_free(session);
 *   mtlite_model_free(model);
 *
 * Errors. Every function that can fail returns an mtlite_status; MTLITE_OK is 0. Nothing else
 * leaves the library: no C++ exception, no abort, and a NULL handle, a NULL pointer, a wrong
 * size or an index out of range is an error code with a message, never a crash. On failure the
 * out-parameters are left as they were. The message of the last failure:
 *   mtlite_model_open*     in the caller's buffer (error, error_size; may be NULL, 0)
 *   calls on a model       mtlite_model_last_error(model): the last failure on that model in
 *                          the calling thread (kept per thread, so threads sharing a model
 *                          read their own); valid until that thread's next failing call
 *   calls on a session     mtlite_session_last_error(session): valid until the session's next
 *                          failing call
 * Messages name what was wrong ("dense feature 'price' is NaN at row 3", "no output 'clik'").
 *
 * Ownership and lifetimes. mtlite_model_open* gives a model that mtlite_model_free releases;
 * mtlite_session_new a session that mtlite_session_free releases. A model must outlive its
 * sessions: mtlite_model_free refuses (MTLITE_ERROR_IN_USE) while sessions of it remain. Every
 * string and array the library returns belongs to the model or session it came from: names
 * live as long as the model, scores and gate weights until the session's next predict.
 *
 * Threads. A model never changes after it is opened: any number of threads may call the
 * mtlite_model_* functions (all but mtlite_model_free) on one model at once, and each may run
 * its own session of it. A
 * session is for one thread at a time (it holds the inputs, the scratch memory and the
 * results of its batch). mtlite_session_predict allocates nothing and takes no lock.
 *
 * Inputs. A session holds one column per feature for up to max_batch rows. The setters copy a
 * whole column (rows 0..rows-1) in; a column keeps its values until it is set again, so a
 * column that is the same for every candidate of a request (the user's features) is set once
 * for a batch size. mtlite_session_predict(session, rows) needs every column set for exactly
 * that many rows. Features are addressed by name or by their index in the model (0 to
 * mtlite_model_feature_count - 1, all kinds together, in the model's order). Dense values must
 * be finite; ids may be anything: a vocabulary feature puts unknown, negative or out-of-range
 * ids in its out-of-vocabulary row, a hashing feature buckets any id.
 *
 * Compatibility. The handles are opaque and the enums' values never change: a program built
 * against this header runs with any library of the same MTLITE_C_ABI_VERSION (the shared
 * library's soname, libmtlite_c.so.<MTLITE_C_ABI_VERSION>).
 */
#ifndef MTLITE_H
#define MTLITE_H

#include <stddef.h>
#include <stdint.h>

#define MTLITE_C_ABI_VERSION 0

#if defined(_WIN32)
#if defined(MTLITE_C_BUILD)
#define MTLITE_API __declspec(dllexport)
#elif defined(MTLITE_C_SHARED)
#define MTLITE_API __declspec(dllimport)
#else
#define MTLITE_API
#endif
#elif defined(__GNUC__) && defined(MTLITE_C_BUILD)
#define MTLITE_API __attribute__((visibility("default")))
#else
#define MTLITE_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mtlite_status {
  MTLITE_OK = 0,
  MTLITE_ERROR_NULL_HANDLE = 1,       /* the model or session argument is NULL */
  MTLITE_ERROR_INVALID_ARGUMENT = 2,  /* a NULL pointer, a wrong size, a feature of another kind,
                                         a non-finite dense value, malformed bag offsets */
  MTLITE_ERROR_NOT_FOUND = 3,         /* no task, output, feature with that name */
  MTLITE_ERROR_OUT_OF_RANGE = 4,      /* an index or row past the end; more rows than max_batch;
                                         a buffer too small for the result */
  MTLITE_ERROR_IO = 5,                /* the file cannot be opened or read */
  MTLITE_ERROR_FORMAT = 6,            /* the bytes are not a valid model (truncated, damaged...) */
  MTLITE_ERROR_SELFTEST_FAILED = 7,   /* the model does not compute what its self-test recorded */
  MTLITE_ERROR_UNSUPPORTED = 8,       /* the model or session lacks what the call needs: no
                                         self-test, no data binding, gates not kept */
  MTLITE_ERROR_NO_RESULT = 9,         /* scores read before a successful predict */
  MTLITE_ERROR_NOT_FINITE = 10,       /* a score came out NaN or infinite (activations overflowed) */
  MTLITE_ERROR_IN_USE = 11,           /* mtlite_model_free while sessions of the model remain */
  MTLITE_ERROR_OUT_OF_MEMORY = 12,
  MTLITE_ERROR_INTERNAL = 13          /* a bug in mtlite: please report it with the message */
} mtlite_status;

typedef enum mtlite_feature_kind {
  MTLITE_FEATURE_DENSE = 0,        /* one float per row: mtlite_session_set_dense */
  MTLITE_FEATURE_CATEGORICAL = 1,  /* one id per row: mtlite_session_set_ids */
  MTLITE_FEATURE_MULTI_HOT = 2     /* a bag of ids per row, pooled: mtlite_session_set_bags */
} mtlite_feature_kind;

/* How a categorical or multi-hot feature maps an id to its embedding row. */
typedef enum mtlite_id_mapping {
  MTLITE_MAPPING_NONE = 0,        /* dense features */
  MTLITE_MAPPING_VOCABULARY = 1,  /* ids 0..size-1; anything else is out of vocabulary */
  MTLITE_MAPPING_HASHING = 2      /* any id, hashed into size buckets */
} mtlite_id_mapping;

typedef struct mtlite_model mtlite_model;
typedef struct mtlite_session mtlite_session;

/* mtlite_model_open* flags. */
#define MTLITE_OPEN_VERIFY_CHECKSUM 1u /* hash the whole file first (damaged bytes: FORMAT) */
#define MTLITE_OPEN_SELFTEST 2u        /* run the stored self-test before returning */
#define MTLITE_OPEN_IN_PLACE 4u        /* mtlite_model_open_memory: use the buffer, do not copy it */

/* mtlite_session_new flags. */
#define MTLITE_SESSION_KEEP_GATES 1u /* keep every gate's expert weights per row */

/* The library's version, "major.minor.patch" (a static string). */
MTLITE_API const char* mtlite_version(void);
/* The ABI version the library was built with: compare with MTLITE_C_ABI_VERSION. */
MTLITE_API int mtlite_abi_version(void);
/* A status's name, "MTLITE_ERROR_NOT_FOUND" (a static string; "unknown status" for others). */
MTLITE_API const char* mtlite_status_name(mtlite_status status);
/* The kernel level in use ("avx2", "neon-dot", "scalar"...; a static string). */
MTLITE_API const char* mtlite_kernel_level(void);

/* ---- Models ------------------------------------------------------------------------------ */

/* Opens a .mtl file, memory-mapped (weights used in place; the file may not be modified while
 * it is open: replace it by rename). Every count, offset, size and shape is checked before
 * use: a bad file is MTLITE_ERROR_FORMAT, a missing or unreadable one MTLITE_ERROR_IO.
 * flags: MTLITE_OPEN_VERIFY_CHECKSUM, MTLITE_OPEN_SELFTEST. On failure *model is unchanged and
 * `error` (if not NULL) holds the message, cut to error_size - 1 bytes and NUL-terminated. */
MTLITE_API mtlite_status mtlite_model_open(const char* path, uint32_t flags, mtlite_model** model, char* error,
                                           size_t error_size);

/* Opens a .mtl image in memory. By default the image is copied and the caller may free `data`
 * as soon as this returns. With MTLITE_OPEN_IN_PLACE it is used where it is (no copy: a model
 * compiled into the program); then `data` must be 64-byte aligned (else INVALID_ARGUMENT) and
 * stay alive and unchanged until mtlite_model_free. */
MTLITE_API mtlite_status mtlite_model_open_memory(const void* data, size_t size, uint32_t flags, mtlite_model** model,
                                                  char* error, size_t error_size);

/* Releases a model; NULL is a no-op (MTLITE_OK). MTLITE_ERROR_IN_USE, and nothing released,
 * while sessions of it remain. */
MTLITE_API mtlite_status mtlite_model_free(mtlite_model* model);

/* The message of the calling thread's last failed call on `model` ("" if there is none). */
MTLITE_API const char* mtlite_model_last_error(const mtlite_model* model);

/* Runs the self-test the converter stored in the file (inputs and the scores they must give):
 * MTLITE_ERROR_SELFTEST_FAILED naming the first output that differs; MTLITE_ERROR_UNSUPPORTED
 * if the model carries none (mtlite_model_has_selftest). */
MTLITE_API mtlite_status mtlite_model_selftest(const mtlite_model* model);
MTLITE_API mtlite_status mtlite_model_has_selftest(const mtlite_model* model, int* has_selftest);

/* Tasks: what the model was trained for, in its order. A task removed at conversion (an
 * auxiliary head dropped by mtlite convert --drop-aux) is a task but not an output. */
MTLITE_API mtlite_status mtlite_model_task_count(const mtlite_model* model, size_t* count);
MTLITE_API mtlite_status mtlite_model_task_name(const mtlite_model* model, size_t task, const char** name);
MTLITE_API mtlite_status mtlite_model_task_index(const mtlite_model* model, const char* name, size_t* task);

/* Outputs: what predict scores, one per served task in task order and named after it, then
 * pCTCVR when the model has an ESMM block (named by it, "ctcvr" by default): a task's scores are
 * those of the output of its name (NOT_FOUND for a task not served). Binary outputs are
 * probabilities, regression outputs values. Names match exactly (case and all). */
MTLITE_API mtlite_status mtlite_model_output_count(const mtlite_model* model, size_t* count);
MTLITE_API mtlite_status mtlite_model_output_name(const mtlite_model* model, size_t output, const char** name);
MTLITE_API mtlite_status mtlite_model_output_index(const mtlite_model* model, const char* name, size_t* output);

/* Features, in the model's order. size: a vocabulary's ids (0..size-1) or a hashing feature's
 * buckets; 0 for dense features. */
MTLITE_API mtlite_status mtlite_model_feature_count(const mtlite_model* model, size_t* count);
MTLITE_API mtlite_status mtlite_model_feature_name(const mtlite_model* model, size_t feature, const char** name);
MTLITE_API mtlite_status mtlite_model_feature_index(const mtlite_model* model, const char* name, size_t* feature);
MTLITE_API mtlite_status mtlite_model_feature_kind(const mtlite_model* model, size_t feature,
                                                   mtlite_feature_kind* kind);
MTLITE_API mtlite_status mtlite_model_feature_mapping(const mtlite_model* model, size_t feature,
                                                      mtlite_id_mapping* mapping);
MTLITE_API mtlite_status mtlite_model_feature_size(const mtlite_model* model, size_t feature, uint64_t* size);

/* Gates (MMoE "gate<k>" per task, OMoE "gate", PLE "ple<l>.task<k>.gate", "ple<l>.shared.gate"),
 * each weighing `width` experts; none in other architectures. */
MTLITE_API mtlite_status mtlite_model_gate_count(const mtlite_model* model, size_t* count);
MTLITE_API mtlite_status mtlite_model_gate_name(const mtlite_model* model, size_t gate, const char** name);
MTLITE_API mtlite_status mtlite_model_gate_width(const mtlite_model* model, size_t gate, size_t* width);

/* ---- Raw values to ids ------------------------------------------------------------------- */

/* The id training gave a raw value of a categorical or multi-hot feature, by the rule the
 * model carries (the data binding of mtlite train, kept by mtlite convert): the value is
 * trimmed; empty or missing tokens and unknown vocabulary values give -1 (the out-of-vocabulary
 * row); hashing features hash the text; integer-valued features take the integer (text that is
 * no integer is INVALID_ARGUMENT). MTLITE_ERROR_UNSUPPORTED when the model carries no binding
 * (trained elsewhere or built in code): then ids come from the caller, mtlite_hash_string for
 * hashing features. The integer form is the value's decimal text. */
MTLITE_API mtlite_status mtlite_model_id_string(const mtlite_model* model, size_t feature, const char* value,
                                                int64_t* id);
MTLITE_API mtlite_status mtlite_model_id_int(const mtlite_model* model, size_t feature, int64_t value, int64_t* id);

/* The ids of a multi-hot field ("a|b|c", split at the binding's separator as in training; empty
 * and missing items left out) into ids[0..capacity). *count is the number of ids the field
 * holds, also when capacity is too small (then MTLITE_ERROR_OUT_OF_RANGE and ids holds the
 * first `capacity`). ids may be NULL when capacity is 0. */
MTLITE_API mtlite_status mtlite_model_bag_ids(const mtlite_model* model, size_t feature, const char* field,
                                              int64_t* ids, size_t capacity, size_t* count);

/* The id of a string for hashing features when the model carries no binding: the id hash of
 * core/hash.hpp (FNV-1a 64 of the bytes) as int64. `length` bytes of `data`, NUL or not. */
MTLITE_API mtlite_status mtlite_hash_string(const char* data, size_t length, int64_t* id);

/* ---- Sessions ---------------------------------------------------------------------------- */

/* A session scoring up to max_batch rows per predict (at least 1), with all its memory
 * allocated here. flags: MTLITE_SESSION_KEEP_GATES. A failure's message is the model's
 * (mtlite_model_last_error). */
MTLITE_API mtlite_status mtlite_session_new(const mtlite_model* model, size_t max_batch, uint32_t flags,
                                            mtlite_session** session);
/* NULL is a no-op (MTLITE_OK). */
MTLITE_API mtlite_status mtlite_session_free(mtlite_session* session);
/* The message of the session's last failed call ("" if there is none). */
MTLITE_API const char* mtlite_session_last_error(const mtlite_session* session);
MTLITE_API mtlite_status mtlite_session_max_batch(const mtlite_session* session, size_t* max_batch);

/* A dense feature's values for rows 0..rows-1 (rows <= max_batch). NaN and infinity are
 * refused by predict, which names the feature and the row. */
MTLITE_API mtlite_status mtlite_session_set_dense(mtlite_session* session, size_t feature, const float* values,
                                                  size_t rows);
MTLITE_API mtlite_status mtlite_session_set_dense_by_name(mtlite_session* session, const char* name,
                                                          const float* values, size_t rows);
/* A categorical feature's ids for rows 0..rows-1 (from mtlite_model_id_*, or the caller's). */
MTLITE_API mtlite_status mtlite_session_set_ids(mtlite_session* session, size_t feature, const int64_t* ids,
                                                size_t rows);
MTLITE_API mtlite_status mtlite_session_set_ids_by_name(mtlite_session* session, const char* name,
                                                        const int64_t* ids, size_t rows);
/* A multi-hot feature's bags for rows 0..rows-1: row r holds ids[offsets[r] .. offsets[r+1]).
 * offsets has rows + 1 non-decreasing values, the last at most id_count. The ids are copied:
 * the session's buffer grows to the largest bag column set (the one allocation after
 * mtlite_session_new, outside predict). */
MTLITE_API mtlite_status mtlite_session_set_bags(mtlite_session* session, size_t feature, const int64_t* ids,
                                                 size_t id_count, const uint32_t* offsets, size_t rows);
MTLITE_API mtlite_status mtlite_session_set_bags_by_name(mtlite_session* session, const char* name,
                                                         const int64_t* ids, size_t id_count,
                                                         const uint32_t* offsets, size_t rows);

/* Scores rows 0..rows-1 of the columns set. On failure nothing is scored and the previous
 * results are gone (MTLITE_ERROR_NO_RESULT until the next success). */
MTLITE_API mtlite_status mtlite_session_predict(mtlite_session* session, size_t rows);

/* The rows the last successful predict scored (0 before any). */
MTLITE_API mtlite_status mtlite_session_rows(const mtlite_session* session, size_t* rows);
/* One output's scores, one per row: *scores points into the session, valid until its next
 * predict or free; *rows is their count. The score and gate calls answer MTLITE_ERROR_NO_RESULT
 * before a successful predict, after a failed one, and once an input column is set again (the
 * results would no longer be those of the inputs). */
MTLITE_API mtlite_status mtlite_session_scores(const mtlite_session* session, size_t output, const float** scores,
                                               size_t* rows);
MTLITE_API mtlite_status mtlite_session_scores_by_name(const mtlite_session* session, const char* output,
                                                       const float** scores, size_t* rows);
MTLITE_API mtlite_status mtlite_session_score(const mtlite_session* session, size_t output, size_t row,
                                              float* score);
/* The weights gate `gate` gave its experts for one row of the last predict (width values,
 * mtlite_model_gate_width): needs MTLITE_SESSION_KEEP_GATES, else MTLITE_ERROR_UNSUPPORTED. */
MTLITE_API mtlite_status mtlite_session_gate(const mtlite_session* session, size_t gate, size_t row,
                                             const float** weights, size_t* width);

#ifdef __cplusplus
}
#endif

#endif /* MTLITE_H */
