/* The C API (include/mtlite.h), compiled as C99: every function, and every error path.
 *   c_api_test MODEL.mtl CHECKPOINT.mtl
 * MODEL.mtl and CHECKPOINT.mtl come from tests/c_api/make_model.sh: tests/c_api/model.json
 * trained on a synthetic funnel (the checkpoint), then converted to int8 without the auxiliary
 * head "cart" and with a self-test (the model). The names, kinds and sizes checked below are
 * that model.json's and the awk rules of make_model.sh.
 * Prints every failed check and the count; exits 1 on any failure. */
#define _POSIX_C_SOURCE 200809L

#include <mtlite.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int checks, failures;

/* Heap allocations counted (glibc: the allocator's own entry points stay reachable under
 * __libc_*), to check that predict allocates nothing. The sanitizers bring their own allocator:
 * their builds skip the count and say so. */
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define COUNT_ALLOCATIONS 1
extern void* __libc_malloc(size_t size);
extern void* __libc_calloc(size_t count, size_t size);
extern void* __libc_realloc(void* p, size_t size);
extern void* __libc_memalign(size_t alignment, size_t size);
static volatile long allocations;
void* malloc(size_t size) {
  ++allocations;
  return __libc_malloc(size);
}
void* calloc(size_t count, size_t size) {
  ++allocations;
  return __libc_calloc(count, size);
}
void* realloc(void* p, size_t size) {
  ++allocations;
  return __libc_realloc(p, size);
}
void* aligned_alloc(size_t alignment, size_t size) {
  ++allocations;
  return __libc_memalign(alignment, size);
}
int posix_memalign(void** p, size_t alignment, size_t size) {
  ++allocations;
  *p = __libc_memalign(alignment, size);
  return *p ? 0 : 12; /* ENOMEM */
}
#endif

static void check(int ok, const char* what, int line) {
  ++checks;
  if (!ok) {
    ++failures;
    printf("FAIL line %d: %s\n", line, what);
  }
}
#define CHECK(cond) check((cond) != 0, #cond, __LINE__)

/* A call's status against the one expected; on a mismatch prints both and `message`. */
static void check_status(mtlite_status got, mtlite_status want, const char* call, const char* message, int line) {
  ++checks;
  if (got != want) {
    ++failures;
    printf("FAIL line %d: %s: got %s, expected %s (%s)\n", line, call, mtlite_status_name(got), mtlite_status_name(want),
           message ? message : "");
  }
}
#define EXPECT_M(call, want) check_status((call), (want), #call, mtlite_model_last_error(model), __LINE__)
#define EXPECT_S(call, want) check_status((call), (want), #call, mtlite_session_last_error(session), __LINE__)
#define EXPECT(call, want) check_status((call), (want), #call, "", __LINE__)

static int contains(const char* text, const char* part) { return text && strstr(text, part) != NULL; }

/* ---- the model file's bytes, and files made from them */

static unsigned char* image;
static size_t image_size;
static char scratch_dir[64];

static unsigned char* read_all(const char* path, size_t* size) {
  FILE* f = fopen(path, "rb");
  unsigned char* data = NULL;
  long n;
  if (!f) return NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
    data = malloc((size_t)n);
    if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
      free(data);
      data = NULL;
    }
    *size = (size_t)n;
  }
  fclose(f);
  return data;
}

static const char* write_scratch(const char* name, const unsigned char* data, size_t size) {
  static char path[128];
  FILE* f;
  snprintf(path, sizeof path, "%s/%s", scratch_dir, name);
  f = fopen(path, "wb");
  if (!f || fwrite(data, 1, size, f) != size) {
    printf("cannot write %s\n", path);
    exit(1);
  }
  fclose(f);
  return path;
}

/* ---- the model's shape, as model.json and make_model.sh make it */

enum { DEVICE, ITEM_ID, SKU, TAGS, PRICE, DISCOUNT, FEATURES };
enum { OUT_CLICK, OUT_PURCHASE, OUT_CTCVR, OUTPUTS };
#define ROWS 5

static void test_library(void) {
  static const mtlite_status all[] = {
      MTLITE_OK, MTLITE_ERROR_NULL_HANDLE, MTLITE_ERROR_INVALID_ARGUMENT, MTLITE_ERROR_NOT_FOUND,
      MTLITE_ERROR_OUT_OF_RANGE, MTLITE_ERROR_IO, MTLITE_ERROR_FORMAT, MTLITE_ERROR_SELFTEST_FAILED,
      MTLITE_ERROR_UNSUPPORTED, MTLITE_ERROR_NO_RESULT, MTLITE_ERROR_NOT_FINITE, MTLITE_ERROR_IN_USE,
      MTLITE_ERROR_OUT_OF_MEMORY, MTLITE_ERROR_INTERNAL};
  size_t i, j;
  const char* forced = getenv("MTLITE_KERNELS");
  int64_t id = 0, again = 1;

  CHECK(strcmp(mtlite_version(), MTLITE_EXPECTED_VERSION) == 0);
  CHECK(mtlite_abi_version() == MTLITE_C_ABI_VERSION);
  for (i = 0; i < sizeof all / sizeof all[0]; ++i) {
    CHECK(strncmp(mtlite_status_name(all[i]), "MTLITE_", 7) == 0);
    for (j = 0; j < i; ++j) CHECK(strcmp(mtlite_status_name(all[i]), mtlite_status_name(all[j])) != 0);
  }
  CHECK(strcmp(mtlite_status_name(MTLITE_OK), "MTLITE_OK") == 0);
  CHECK(strcmp(mtlite_status_name((mtlite_status)99), "unknown status") == 0);
  /* The level in use: the forced one when MTLITE_KERNELS names one (meson runs this test so). */
  CHECK(mtlite_kernel_level()[0] != '\0');
  if (forced && *forced) CHECK(strcmp(mtlite_kernel_level(), forced) == 0);

  /* The id hash: FNV-1a 64 (core/hash.hpp); "" is the offset basis. */
  EXPECT(mtlite_hash_string("", 0, &id), MTLITE_OK);
  CHECK((uint64_t)id == 0xcbf29ce484222325ull);
  EXPECT(mtlite_hash_string(NULL, 0, &again), MTLITE_OK);
  CHECK(again == id);
  EXPECT(mtlite_hash_string("a\0b", 3, &id), MTLITE_OK);
  EXPECT(mtlite_hash_string("a", 1, &again), MTLITE_OK);
  CHECK(id != again); /* the length counts, not the NUL */
  EXPECT(mtlite_hash_string(NULL, 1, &id), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT(mtlite_hash_string("a", 1, NULL), MTLITE_ERROR_INVALID_ARGUMENT);
}

static void test_open_errors(const char* model_path) {
  mtlite_model* model = NULL;
  char error[256], small[8];
  char path[128];

  EXPECT(mtlite_model_open(NULL, 0, &model, error, sizeof error), MTLITE_ERROR_INVALID_ARGUMENT);
  CHECK(contains(error, "path is NULL"));
  EXPECT(mtlite_model_open(model_path, 0, NULL, error, sizeof error), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT(mtlite_model_open(model_path, 0x80, &model, error, sizeof error), MTLITE_ERROR_INVALID_ARGUMENT);
  CHECK(contains(error, "unknown flags"));
  EXPECT(mtlite_model_open(model_path, MTLITE_OPEN_IN_PLACE, &model, error, sizeof error),
         MTLITE_ERROR_INVALID_ARGUMENT);
  CHECK(contains(error, "is for mtlite_model_open_memory"));
  snprintf(path, sizeof path, "%s/no-such-model.mtl", scratch_dir);
  EXPECT(mtlite_model_open(path, 0, &model, error, sizeof error), MTLITE_ERROR_IO);
  CHECK(contains(error, path) && contains(error, "No such file"));
  CHECK(model == NULL);
  /* No buffer, or a small one: the status alone, or the message cut and terminated. */
  EXPECT(mtlite_model_open(path, 0, &model, NULL, 0), MTLITE_ERROR_IO);
  memset(small, 'x', sizeof small);
  EXPECT(mtlite_model_open(path, 0, &model, small, sizeof small), MTLITE_ERROR_IO);
  CHECK(strlen(small) == sizeof small - 1);
  EXPECT(mtlite_model_open(scratch_dir, 0, &model, error, sizeof error), MTLITE_ERROR_IO);
  CHECK(contains(error, "is a directory"));
  CHECK(model == NULL);

  EXPECT(mtlite_model_open_memory(NULL, 10, 0, &model, error, sizeof error), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT(mtlite_model_open_memory(image, image_size, 0, NULL, error, sizeof error), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT(mtlite_model_open_memory(image, image_size, 0x80, &model, error, sizeof error), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT(mtlite_model_open_memory(image, 0, 0, &model, error, sizeof error), MTLITE_ERROR_FORMAT);
  CHECK(model == NULL);
}

/* Truncated and damaged files: refused with FORMAT (or, damaged weights, a failed self-test),
 * never a crash. */
static void test_bad_bytes(void) {
  mtlite_model* model = NULL;
  char error[256];
  size_t cuts[] = {1, 8, 63, 64, 65, 200, 0, 0, 0};
  size_t i, outcomes[16] = {0};
  unsigned char* copy = malloc(image_size);
  const char* path;

  cuts[6] = image_size / 2;
  cuts[7] = image_size - 64;
  cuts[8] = image_size - 1;
  for (i = 0; i < sizeof cuts / sizeof cuts[0]; ++i) {
    path = write_scratch("truncated.mtl", image, cuts[i]);
    EXPECT(mtlite_model_open(path, 0, &model, error, sizeof error), MTLITE_ERROR_FORMAT);
    CHECK(error[0] != '\0');
    EXPECT(mtlite_model_open_memory(image, cuts[i], 0, &model, error, sizeof error), MTLITE_ERROR_FORMAT);
  }
  path = write_scratch("empty.mtl", image, 0);
  EXPECT(mtlite_model_open(path, 0, &model, error, sizeof error), MTLITE_ERROR_FORMAT);
  CHECK(model == NULL);

  /* Every byte flipped in turn. With the checksum asked for, each damaged file is refused (but
   * for the header's minor version, bytes 10-11, which a reader ignores by design: FORMAT.md);
   * without it, the structure checks refuse some and the self-test catches damaged weights. */
  memcpy(copy, image, image_size);
  for (i = 0; i < image_size; ++i) {
    mtlite_status st;
    copy[i] ^= 0xff;
    st = mtlite_model_open_memory(copy, image_size, MTLITE_OPEN_VERIFY_CHECKSUM, &model, error, sizeof error);
    if (i == 10 || i == 11) {
      CHECK(st == MTLITE_OK);
      if (st == MTLITE_OK) mtlite_model_free(model);
    } else if (st != MTLITE_ERROR_FORMAT) {
      printf("byte %zu flipped, checksum verified: %s (%s)\n", i, mtlite_status_name(st), error);
      CHECK(st == MTLITE_ERROR_FORMAT);
      if (st == MTLITE_OK) mtlite_model_free(model);
    }
    st = mtlite_model_open_memory(copy, image_size, MTLITE_OPEN_SELFTEST, &model, error, sizeof error);
    ++outcomes[st < 16 ? st : 15];
    if (st == MTLITE_OK) mtlite_model_free(model);
    if (st != MTLITE_OK && st != MTLITE_ERROR_FORMAT && st != MTLITE_ERROR_SELFTEST_FAILED) {
      printf("byte %zu flipped: %s (%s)\n", i, mtlite_status_name(st), error);
      CHECK(0);
    }
    copy[i] ^= 0xff;
  }
  printf("bytes flipped without the checksum: %zu refused as FORMAT, %zu by the self-test, %zu opened\n",
         outcomes[MTLITE_ERROR_FORMAT], outcomes[MTLITE_ERROR_SELFTEST_FAILED], outcomes[MTLITE_OK]);
  CHECK(outcomes[MTLITE_ERROR_FORMAT] > 0);
  CHECK(outcomes[MTLITE_ERROR_SELFTEST_FAILED] > 0);
  free(copy);
}

/* A model with its data binding renamed away ("data":{ -> "dat0":{ in the metadata, which no
 * check covers when the checksum is not asked for): ids must then come from the caller. */
static void test_no_binding(void) {
  mtlite_model* model = NULL;
  char error[256];
  unsigned char* copy = malloc(image_size);
  size_t i, renamed = 0;
  int64_t id = 7;

  memcpy(copy, image, image_size);
  for (i = 0; i + 8 <= image_size; ++i)
    if (memcmp(copy + i, "\"data\":{", 8) == 0) {
      copy[i + 4] = '0';
      ++renamed;
    }
  CHECK(renamed == 1);
  EXPECT(mtlite_model_open_memory(copy, image_size, 0, &model, error, sizeof error), MTLITE_OK);
  if (model) {
    EXPECT_M(mtlite_model_id_string(model, DEVICE, "mobile", &id), MTLITE_ERROR_UNSUPPORTED);
    CHECK(contains(mtlite_model_last_error(model), "no data binding"));
    EXPECT_M(mtlite_model_id_int(model, ITEM_ID, 3, &id), MTLITE_ERROR_UNSUPPORTED);
    EXPECT_M(mtlite_model_bag_ids(model, TAGS, "c1", &id, 1, &i), MTLITE_ERROR_UNSUPPORTED);
    CHECK(id == 7);
    EXPECT_M(mtlite_model_free(model), MTLITE_OK);
  }
  free(copy);
}

/* One of the model's lists of names (tasks, outputs, features, gates): its count, every name by
 * index and back (when the list has an index call), and every way to call them wrongly. */
typedef mtlite_status (*count_fn)(const mtlite_model*, size_t*);
typedef mtlite_status (*name_fn)(const mtlite_model*, size_t, const char**);
typedef mtlite_status (*index_fn)(const mtlite_model*, const char*, size_t*);

static void check_names(mtlite_model* model, const char* what, count_fn count, name_fn name_at, index_fn index_of,
                        const char* const* names, size_t expected, int line) {
  size_t n = 99, i;
  const char* name = NULL;
  char unknown[64], message[96];
#define EXPECT_AT(call, want) check_status((call), (want), #call, mtlite_model_last_error(model), line)
  EXPECT_AT(count(model, &n), MTLITE_OK);
  check(n == expected, "the count", line);
  for (i = 0; i < expected; ++i) {
    EXPECT_AT(name_at(model, i, &name), MTLITE_OK);
    check(name && strcmp(name, names[i]) == 0, names[i], line);
    if (index_of) {
      EXPECT_AT(index_of(model, names[i], &n), MTLITE_OK);
      check(n == i, "the index of a name", line);
    }
  }
  EXPECT_AT(name_at(model, expected, &name), MTLITE_ERROR_OUT_OF_RANGE);
  snprintf(message, sizeof message, "%s index %zu out of range", what, expected);
  check(contains(mtlite_model_last_error(model), message), message, line);
  EXPECT_AT(name_at(model, (size_t)-1, &name), MTLITE_ERROR_OUT_OF_RANGE);
  EXPECT_AT(count(model, NULL), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_AT(name_at(model, 0, NULL), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_AT(count(NULL, &n), MTLITE_ERROR_NULL_HANDLE);
  EXPECT_AT(name_at(NULL, 0, &name), MTLITE_ERROR_NULL_HANDLE);
  if (index_of) {
    n = 99;
    snprintf(unknown, sizeof unknown, "%s-that-is-not", what);
    EXPECT_AT(index_of(model, unknown, &n), MTLITE_ERROR_NOT_FOUND);
    snprintf(message, sizeof message, "no %s '%s'", what, unknown);
    check(contains(mtlite_model_last_error(model), message) && contains(mtlite_model_last_error(model), names[0]) &&
              n == 99,
          message, line);
    EXPECT_AT(index_of(model, NULL, &n), MTLITE_ERROR_INVALID_ARGUMENT);
    EXPECT_AT(index_of(model, names[0], NULL), MTLITE_ERROR_INVALID_ARGUMENT);
    EXPECT_AT(index_of(NULL, names[0], &n), MTLITE_ERROR_NULL_HANDLE);
  }
#undef EXPECT_AT
}

static void test_model_queries(mtlite_model* model) {
  size_t n = 99, i;
  mtlite_feature_kind kind;
  mtlite_id_mapping mapping;
  uint64_t size = 0;
  int has = -1;
  static const char* const tasks[] = {"click", "cart", "purchase"};
  static const char* const outputs[OUTPUTS] = {"click", "purchase", "ctcvr"};
  static const char* const gates[] = {"gate0", "gate2"};
  static const char* const features[FEATURES] = {"device", "item_id", "sku", "tags", "price", "discount"};
  static const mtlite_feature_kind kinds[FEATURES] = {MTLITE_FEATURE_CATEGORICAL, MTLITE_FEATURE_CATEGORICAL,
                                                      MTLITE_FEATURE_CATEGORICAL, MTLITE_FEATURE_MULTI_HOT,
                                                      MTLITE_FEATURE_DENSE,       MTLITE_FEATURE_DENSE};
  static const mtlite_id_mapping mappings[FEATURES] = {MTLITE_MAPPING_VOCABULARY, MTLITE_MAPPING_VOCABULARY,
                                                       MTLITE_MAPPING_HASHING,    MTLITE_MAPPING_VOCABULARY,
                                                       MTLITE_MAPPING_NONE,       MTLITE_MAPPING_NONE};
  /* 3 devices in the funnel; 200 items (model.json); 64 buckets; c0..c5 and h0..h3. */
  static const uint64_t sizes[FEATURES] = {3, 200, 64, 10, 0, 0};

  EXPECT_M(mtlite_model_has_selftest(model, &has), MTLITE_OK);
  CHECK(has == 1);
  EXPECT_M(mtlite_model_has_selftest(model, NULL), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT(mtlite_model_has_selftest(NULL, &has), MTLITE_ERROR_NULL_HANDLE);
  EXPECT_M(mtlite_model_selftest(model), MTLITE_OK);
  EXPECT(mtlite_model_selftest(NULL), MTLITE_ERROR_NULL_HANDLE);

  /* Tasks: all three, the dropped one included. Outputs: the served tasks, then pCTCVR. */
  check_names(model, "task", mtlite_model_task_count, mtlite_model_task_name, mtlite_model_task_index, tasks, 3,
              __LINE__);
  check_names(model, "output", mtlite_model_output_count, mtlite_model_output_name, mtlite_model_output_index, outputs,
              OUTPUTS, __LINE__);
  EXPECT_M(mtlite_model_output_index(model, "cart", &n), MTLITE_ERROR_NOT_FOUND);
  CHECK(contains(mtlite_model_last_error(model), "no output 'cart'") &&
        contains(mtlite_model_last_error(model), "click, purchase, ctcvr"));

  /* Features. */
  check_names(model, "feature", mtlite_model_feature_count, mtlite_model_feature_name, mtlite_model_feature_index,
              features, FEATURES, __LINE__);
  for (i = 0; i < FEATURES; ++i) {
    EXPECT_M(mtlite_model_feature_kind(model, i, &kind), MTLITE_OK);
    CHECK(kind == kinds[i]);
    EXPECT_M(mtlite_model_feature_mapping(model, i, &mapping), MTLITE_OK);
    CHECK(mapping == mappings[i]);
    EXPECT_M(mtlite_model_feature_size(model, i, &size), MTLITE_OK);
    CHECK(size == sizes[i]);
  }
  EXPECT_M(mtlite_model_feature_index(model, "Price", &n), MTLITE_ERROR_NOT_FOUND);
  CHECK(contains(mtlite_model_last_error(model), "no feature 'Price'"));
  EXPECT_M(mtlite_model_feature_kind(model, FEATURES, &kind), MTLITE_ERROR_OUT_OF_RANGE);
  EXPECT_M(mtlite_model_feature_mapping(model, FEATURES, &mapping), MTLITE_ERROR_OUT_OF_RANGE);
  EXPECT_M(mtlite_model_feature_size(model, (size_t)-1, &size), MTLITE_ERROR_OUT_OF_RANGE);
  EXPECT_M(mtlite_model_feature_kind(model, 0, NULL), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_M(mtlite_model_feature_mapping(model, 0, NULL), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_M(mtlite_model_feature_size(model, 0, NULL), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT(mtlite_model_feature_kind(NULL, 0, &kind), MTLITE_ERROR_NULL_HANDLE);
  EXPECT(mtlite_model_feature_mapping(NULL, 0, &mapping), MTLITE_ERROR_NULL_HANDLE);
  EXPECT(mtlite_model_feature_size(NULL, 0, &size), MTLITE_ERROR_NULL_HANDLE);

  /* Gates: MMoE's gate<k> for each served task k, each over the 3 experts. */
  check_names(model, "gate", mtlite_model_gate_count, mtlite_model_gate_name, NULL, gates, 2, __LINE__);
  EXPECT_M(mtlite_model_gate_width(model, 1, &n), MTLITE_OK);
  CHECK(n == 3);
  EXPECT_M(mtlite_model_gate_width(model, 2, &n), MTLITE_ERROR_OUT_OF_RANGE);
  EXPECT_M(mtlite_model_gate_width(model, 0, NULL), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT(mtlite_model_gate_width(NULL, 0, &n), MTLITE_ERROR_NULL_HANDLE);

  CHECK(mtlite_model_last_error(NULL)[0] != '\0');
}

static void test_ids(mtlite_model* model) {
  int64_t id = 0, other = 0, bag[4] = {0, 0, 0, 0};
  size_t count = 99;

  /* Vocabulary strings: trimmed; unknown, empty and missing ("NA": data.missing) are -1. */
  EXPECT_M(mtlite_model_id_string(model, DEVICE, "mobile", &id), MTLITE_OK);
  CHECK(id >= 0 && id < 3);
  EXPECT_M(mtlite_model_id_string(model, DEVICE, " \tmobile ", &other), MTLITE_OK);
  CHECK(other == id);
  EXPECT_M(mtlite_model_id_string(model, DEVICE, "tablet", &other), MTLITE_OK);
  CHECK(other >= 0 && other < 3 && other != id);
  EXPECT_M(mtlite_model_id_string(model, DEVICE, "phone", &id), MTLITE_OK);
  CHECK(id == -1);
  EXPECT_M(mtlite_model_id_string(model, DEVICE, "", &id), MTLITE_OK);
  CHECK(id == -1);
  EXPECT_M(mtlite_model_id_string(model, DEVICE, "NA", &id), MTLITE_OK);
  CHECK(id == -1);
  /* Integer values: the integer itself, from text or from a number; text that is none is refused. */
  EXPECT_M(mtlite_model_id_int(model, ITEM_ID, 42, &id), MTLITE_OK);
  CHECK(id == 42);
  EXPECT_M(mtlite_model_id_string(model, ITEM_ID, "+17", &id), MTLITE_OK);
  CHECK(id == 17);
  id = 5;
  EXPECT_M(mtlite_model_id_string(model, ITEM_ID, "17x", &id), MTLITE_ERROR_INVALID_ARGUMENT);
  CHECK(contains(mtlite_model_last_error(model), "17x"));
  CHECK(id == 5);
  /* Hashing: the string's hash, the same as mtlite_hash_string's. */
  EXPECT_M(mtlite_model_id_string(model, SKU, "sku-5", &id), MTLITE_OK);
  EXPECT(mtlite_hash_string("sku-5", 5, &other), MTLITE_OK);
  CHECK(id == other);
  EXPECT_M(mtlite_model_id_int(model, SKU, 5, &id), MTLITE_OK);
  EXPECT(mtlite_hash_string("5", 1, &other), MTLITE_OK);
  CHECK(id == other);
  /* One item of a multi-hot feature. */
  EXPECT_M(mtlite_model_id_string(model, TAGS, "c1", &id), MTLITE_OK);
  CHECK(id >= 0 && id < 10);
  /* Wrong features. */
  EXPECT_M(mtlite_model_id_string(model, PRICE, "1", &id), MTLITE_ERROR_INVALID_ARGUMENT);
  CHECK(contains(mtlite_model_last_error(model), "'price' is dense"));
  EXPECT_M(mtlite_model_id_int(model, DISCOUNT, 1, &id), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_M(mtlite_model_id_string(model, FEATURES, "1", &id), MTLITE_ERROR_OUT_OF_RANGE);
  EXPECT_M(mtlite_model_id_int(model, FEATURES, 1, &id), MTLITE_ERROR_OUT_OF_RANGE);
  EXPECT_M(mtlite_model_id_string(model, DEVICE, NULL, &id), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_M(mtlite_model_id_string(model, DEVICE, "mobile", NULL), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_M(mtlite_model_id_int(model, ITEM_ID, 1, NULL), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT(mtlite_model_id_string(NULL, DEVICE, "mobile", &id), MTLITE_ERROR_NULL_HANDLE);
  EXPECT(mtlite_model_id_int(NULL, ITEM_ID, 1, &id), MTLITE_ERROR_NULL_HANDLE);

  /* Bags: split at '|', items trimmed, empty and missing items left out. */
  EXPECT_M(mtlite_model_bag_ids(model, TAGS, "c1| h2||NA", bag, 4, &count), MTLITE_OK);
  CHECK(count == 2);
  EXPECT_M(mtlite_model_id_string(model, TAGS, "c1", &id), MTLITE_OK);
  EXPECT_M(mtlite_model_id_string(model, TAGS, "h2", &other), MTLITE_OK);
  CHECK(bag[0] == id && bag[1] == other && id != other);
  EXPECT_M(mtlite_model_bag_ids(model, TAGS, "", bag, 4, &count), MTLITE_OK);
  CHECK(count == 0);
  EXPECT_M(mtlite_model_bag_ids(model, TAGS, "NA", NULL, 0, &count), MTLITE_OK);
  CHECK(count == 0);
  /* Too small: the count says how many, the first ones are there. */
  bag[0] = bag[1] = 0;
  EXPECT_M(mtlite_model_bag_ids(model, TAGS, "c1|h2|c3", bag, 1, &count), MTLITE_ERROR_OUT_OF_RANGE);
  CHECK(count == 3 && bag[0] == id && bag[1] == 0);
  EXPECT_M(mtlite_model_bag_ids(model, TAGS, "c1|h2", NULL, 0, &count), MTLITE_ERROR_OUT_OF_RANGE);
  CHECK(count == 2);
  EXPECT_M(mtlite_model_bag_ids(model, DEVICE, "mobile", bag, 4, &count), MTLITE_ERROR_INVALID_ARGUMENT);
  CHECK(contains(mtlite_model_last_error(model), "not multi-hot"));
  EXPECT_M(mtlite_model_bag_ids(model, PRICE, "1", bag, 4, &count), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_M(mtlite_model_bag_ids(model, FEATURES, "1", bag, 4, &count), MTLITE_ERROR_OUT_OF_RANGE);
  EXPECT_M(mtlite_model_bag_ids(model, TAGS, NULL, bag, 4, &count), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_M(mtlite_model_bag_ids(model, TAGS, "c1", NULL, 4, &count), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_M(mtlite_model_bag_ids(model, TAGS, "c1", bag, 4, NULL), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT(mtlite_model_bag_ids(NULL, TAGS, "c1", bag, 4, &count), MTLITE_ERROR_NULL_HANDLE);
}

/* ---- sessions */

/* ROWS rows of inputs for every feature, from raw values through the model's binding. */
static const float prices[ROWS] = {7.62f, 17.89f, 0.0f, 120.5f, 3.0f};
static const float discounts[ROWS] = {0.2f, 0.0f, 0.5f, 0.1f, 0.3f};
static const char* const devices[ROWS] = {"desktop", "mobile", "tablet", "mobile", "fridge"};
static const int64_t items[ROWS] = {24, 53, 199, 0, 500};
static const char* const skus[ROWS] = {"sku-24", "sku-53", "sku-199", "sku-0", "sku-500"};
static const char* const tag_fields[ROWS] = {"c4", "c5|h2", "", "c0|h1|c3", "NA"};

struct inputs {
  int64_t device[ROWS], item[ROWS], sku[ROWS];
  int64_t bag_ids[ROWS * 4];
  uint32_t offsets[ROWS + 1];
  size_t bag_count;
};

static void make_inputs(mtlite_model* model, struct inputs* in) {
  size_t r, n;
  in->offsets[0] = 0;
  in->bag_count = 0;
  for (r = 0; r < ROWS; ++r) {
    EXPECT_M(mtlite_model_id_string(model, DEVICE, devices[r], &in->device[r]), MTLITE_OK);
    EXPECT_M(mtlite_model_id_int(model, ITEM_ID, items[r], &in->item[r]), MTLITE_OK);
    EXPECT_M(mtlite_model_id_string(model, SKU, skus[r], &in->sku[r]), MTLITE_OK);
    EXPECT_M(mtlite_model_bag_ids(model, TAGS, tag_fields[r], in->bag_ids + in->bag_count, 4, &n), MTLITE_OK);
    in->bag_count += n;
    in->offsets[r + 1] = (uint32_t)in->bag_count;
  }
  CHECK(in->bag_count == 6);
}

/* Rows [first, first + rows) of `in` into the session's columns, by index. */
static int set_rows(mtlite_session* session, const struct inputs* in, size_t first, size_t rows) {
  uint32_t offsets[ROWS + 1];
  size_t r;
  for (r = 0; r <= rows; ++r) offsets[r] = in->offsets[first + r] - in->offsets[first];
  return mtlite_session_set_ids(session, DEVICE, in->device + first, rows) == MTLITE_OK &&
         mtlite_session_set_ids(session, ITEM_ID, in->item + first, rows) == MTLITE_OK &&
         mtlite_session_set_ids(session, SKU, in->sku + first, rows) == MTLITE_OK &&
         mtlite_session_set_bags(session, TAGS, in->bag_ids + in->offsets[first], offsets[rows], offsets, rows) ==
             MTLITE_OK &&
         mtlite_session_set_dense(session, PRICE, prices + first, rows) == MTLITE_OK &&
         mtlite_session_set_dense(session, DISCOUNT, discounts + first, rows) == MTLITE_OK;
}

static void test_session_errors(mtlite_model* model, const struct inputs* in) {
  mtlite_session* session = NULL;
  const float* scores = NULL;
  const float* weights = NULL;
  size_t n = 77, width = 0;
  float score = -1.0f;
  float bad[ROWS];
  uint32_t offsets[3] = {0, 2, 1};

  EXPECT(mtlite_session_new(NULL, 4, 0, &session), MTLITE_ERROR_NULL_HANDLE);
  EXPECT_M(mtlite_session_new(model, 4, 0, NULL), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_M(mtlite_session_new(model, 0, 0, &session), MTLITE_ERROR_INVALID_ARGUMENT);
  CHECK(contains(mtlite_model_last_error(model), "max_batch must be at least 1"));
  EXPECT_M(mtlite_session_new(model, (size_t)-1, 0, &session), MTLITE_ERROR_OUT_OF_MEMORY);
  EXPECT_M(mtlite_session_new(model, 4, 0x40, &session), MTLITE_ERROR_INVALID_ARGUMENT);
  CHECK(session == NULL);
  EXPECT_M(mtlite_session_new(model, 4, 0, &session), MTLITE_OK);
  if (!session) return;

  EXPECT_S(mtlite_session_max_batch(session, &n), MTLITE_OK);
  CHECK(n == 4);
  EXPECT_S(mtlite_session_max_batch(session, NULL), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT(mtlite_session_max_batch(NULL, &n), MTLITE_ERROR_NULL_HANDLE);

  /* Nothing set, nothing predicted. */
  EXPECT_S(mtlite_session_rows(session, &n), MTLITE_OK);
  CHECK(n == 0);
  EXPECT_S(mtlite_session_scores(session, 0, &scores, &n), MTLITE_ERROR_NO_RESULT);
  EXPECT_S(mtlite_session_score(session, 0, 0, &score), MTLITE_ERROR_NO_RESULT);
  CHECK(score == -1.0f && scores == NULL);
  EXPECT_S(mtlite_session_predict(session, 2), MTLITE_ERROR_INVALID_ARGUMENT);
  CHECK(contains(mtlite_session_last_error(session), "feature 'device' was never set"));

  /* Setters: kinds, indexes, names, sizes, pointers. */
  EXPECT_S(mtlite_session_set_dense(session, DEVICE, prices, 2), MTLITE_ERROR_INVALID_ARGUMENT);
  CHECK(contains(mtlite_session_last_error(session), "'device' is categorical"));
  EXPECT_S(mtlite_session_set_ids(session, PRICE, in->item, 2), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_S(mtlite_session_set_ids(session, TAGS, in->item, 2), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_S(mtlite_session_set_bags(session, ITEM_ID, in->bag_ids, 2, in->offsets, 2), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_S(mtlite_session_set_dense(session, FEATURES, prices, 2), MTLITE_ERROR_OUT_OF_RANGE);
  EXPECT_S(mtlite_session_set_ids(session, FEATURES, in->item, 2), MTLITE_ERROR_OUT_OF_RANGE);
  EXPECT_S(mtlite_session_set_bags(session, FEATURES, in->bag_ids, 2, in->offsets, 2), MTLITE_ERROR_OUT_OF_RANGE);
  EXPECT_S(mtlite_session_set_dense(session, PRICE, prices, 5), MTLITE_ERROR_OUT_OF_RANGE);
  CHECK(contains(mtlite_session_last_error(session), "at most 4"));
  EXPECT_S(mtlite_session_set_ids(session, ITEM_ID, in->item, 5), MTLITE_ERROR_OUT_OF_RANGE);
  EXPECT_S(mtlite_session_set_bags(session, TAGS, in->bag_ids, 6, in->offsets, 5), MTLITE_ERROR_OUT_OF_RANGE);
  EXPECT_S(mtlite_session_set_bags(session, TAGS, in->bag_ids, 6, in->offsets, (size_t)-1), MTLITE_ERROR_OUT_OF_RANGE);
  EXPECT_S(mtlite_session_set_dense(session, PRICE, NULL, 2), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_S(mtlite_session_set_ids(session, ITEM_ID, NULL, 2), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_S(mtlite_session_set_bags(session, TAGS, in->bag_ids, 6, NULL, 0), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_S(mtlite_session_set_bags(session, TAGS, NULL, 2, in->offsets, 1), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_S(mtlite_session_set_bags(session, TAGS, in->bag_ids, 6, offsets, 2), MTLITE_ERROR_INVALID_ARGUMENT);
  CHECK(contains(mtlite_session_last_error(session), "offsets decrease at row 1"));
  offsets[2] = 3;
  EXPECT_S(mtlite_session_set_bags(session, TAGS, in->bag_ids, 2, offsets, 2), MTLITE_ERROR_INVALID_ARGUMENT);
  CHECK(contains(mtlite_session_last_error(session), "offsets reach 3 but there are 2 ids"));
  EXPECT_S(mtlite_session_set_dense_by_name(session, "prise", prices, 2), MTLITE_ERROR_NOT_FOUND);
  CHECK(contains(mtlite_session_last_error(session), "no feature 'prise'"));
  EXPECT_S(mtlite_session_set_ids_by_name(session, "items", in->item, 2), MTLITE_ERROR_NOT_FOUND);
  EXPECT_S(mtlite_session_set_bags_by_name(session, "tag", in->bag_ids, 2, in->offsets, 2), MTLITE_ERROR_NOT_FOUND);
  EXPECT_S(mtlite_session_set_dense_by_name(session, NULL, prices, 2), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_S(mtlite_session_set_ids_by_name(session, NULL, in->item, 2), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_S(mtlite_session_set_bags_by_name(session, NULL, in->bag_ids, 2, in->offsets, 2), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_S(mtlite_session_set_ids_by_name(session, "price", in->item, 2), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT(mtlite_session_set_dense(NULL, PRICE, prices, 2), MTLITE_ERROR_NULL_HANDLE);
  EXPECT(mtlite_session_set_ids(NULL, ITEM_ID, in->item, 2), MTLITE_ERROR_NULL_HANDLE);
  EXPECT(mtlite_session_set_bags(NULL, TAGS, in->bag_ids, 2, in->offsets, 2), MTLITE_ERROR_NULL_HANDLE);
  EXPECT(mtlite_session_set_dense_by_name(NULL, "price", prices, 2), MTLITE_ERROR_NULL_HANDLE);
  EXPECT(mtlite_session_set_ids_by_name(NULL, "item_id", in->item, 2), MTLITE_ERROR_NULL_HANDLE);
  EXPECT(mtlite_session_set_bags_by_name(NULL, "tags", in->bag_ids, 2, in->offsets, 2), MTLITE_ERROR_NULL_HANDLE);

  /* Columns of different lengths; a batch larger than the session's. */
  CHECK(set_rows(session, in, 0, 3));
  EXPECT_S(mtlite_session_set_dense(session, PRICE, prices, 2), MTLITE_OK);
  EXPECT_S(mtlite_session_predict(session, 3), MTLITE_ERROR_INVALID_ARGUMENT);
  CHECK(contains(mtlite_session_last_error(session), "feature 'price' holds 2 rows, not 3"));
  EXPECT_S(mtlite_session_predict(session, 5), MTLITE_ERROR_OUT_OF_RANGE);
  CHECK(contains(mtlite_session_last_error(session), "at most 4"));
  EXPECT(mtlite_session_predict(NULL, 1), MTLITE_ERROR_NULL_HANDLE);

  /* NaN and infinity: refused by predict, naming the feature and the row; nothing scored. */
  memcpy(bad, discounts, sizeof bad);
  bad[2] = (float)NAN;
  CHECK(set_rows(session, in, 0, 3));
  EXPECT_S(mtlite_session_set_dense_by_name(session, "discount", bad, 3), MTLITE_OK);
  EXPECT_S(mtlite_session_predict(session, 3), MTLITE_ERROR_INVALID_ARGUMENT);
  CHECK(contains(mtlite_session_last_error(session), "dense feature 'discount' is NaN at row 2"));
  EXPECT_S(mtlite_session_scores(session, 0, &scores, &n), MTLITE_ERROR_NO_RESULT);
  bad[2] = discounts[2];
  bad[0] = (float)INFINITY;
  EXPECT_S(mtlite_session_set_dense(session, DISCOUNT, bad, 3), MTLITE_OK);
  EXPECT_S(mtlite_session_predict(session, 3), MTLITE_ERROR_INVALID_ARGUMENT);
  CHECK(contains(mtlite_session_last_error(session), "'discount' is infinite at row 0"));

  /* After a good predict: the result calls' own errors. */
  EXPECT_S(mtlite_session_set_dense(session, DISCOUNT, discounts, 3), MTLITE_OK);
  EXPECT_S(mtlite_session_predict(session, 3), MTLITE_OK);
  EXPECT_S(mtlite_session_scores(session, OUTPUTS, &scores, &n), MTLITE_ERROR_OUT_OF_RANGE);
  EXPECT_S(mtlite_session_scores(session, 0, NULL, &n), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_S(mtlite_session_scores(session, 0, &scores, NULL), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_S(mtlite_session_scores_by_name(session, "cart", &scores, &n), MTLITE_ERROR_NOT_FOUND);
  CHECK(contains(mtlite_session_last_error(session), "no output 'cart'") &&
        contains(mtlite_session_last_error(session), "click, purchase, ctcvr"));
  EXPECT_S(mtlite_session_scores_by_name(session, NULL, &scores, &n), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_S(mtlite_session_score(session, 0, 3, &score), MTLITE_ERROR_OUT_OF_RANGE);
  EXPECT_S(mtlite_session_score(session, OUTPUTS, 0, &score), MTLITE_ERROR_OUT_OF_RANGE);
  EXPECT_S(mtlite_session_score(session, 0, 0, NULL), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_S(mtlite_session_rows(session, NULL), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_S(mtlite_session_gate(session, 0, 0, &weights, &width), MTLITE_ERROR_UNSUPPORTED);
  CHECK(contains(mtlite_session_last_error(session), "MTLITE_SESSION_KEEP_GATES"));
  EXPECT_S(mtlite_session_gate(session, 2, 0, &weights, &width), MTLITE_ERROR_OUT_OF_RANGE);
  EXPECT_S(mtlite_session_gate(session, 0, 0, NULL, &width), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT_S(mtlite_session_gate(session, 0, 0, &weights, NULL), MTLITE_ERROR_INVALID_ARGUMENT);
  EXPECT(mtlite_session_rows(NULL, &n), MTLITE_ERROR_NULL_HANDLE);
  EXPECT(mtlite_session_scores(NULL, 0, &scores, &n), MTLITE_ERROR_NULL_HANDLE);
  EXPECT(mtlite_session_scores_by_name(NULL, "click", &scores, &n), MTLITE_ERROR_NULL_HANDLE);
  EXPECT(mtlite_session_score(NULL, 0, 0, &score), MTLITE_ERROR_NULL_HANDLE);
  EXPECT(mtlite_session_gate(NULL, 0, 0, &weights, &width), MTLITE_ERROR_NULL_HANDLE);
  CHECK(mtlite_session_last_error(NULL)[0] != '\0');

  /* A column set again: the results are no longer those of the inputs. */
  EXPECT_S(mtlite_session_score(session, 0, 0, &score), MTLITE_OK);
  EXPECT_S(mtlite_session_set_dense(session, PRICE, prices, 3), MTLITE_OK);
  EXPECT_S(mtlite_session_score(session, 0, 0, &score), MTLITE_ERROR_NO_RESULT);
  EXPECT_S(mtlite_session_rows(session, &n), MTLITE_OK);
  CHECK(n == 0);

  /* The model refuses to go while its session remains. */
  EXPECT_M(mtlite_model_free(model), MTLITE_ERROR_IN_USE);
  CHECK(contains(mtlite_model_last_error(model), "1 sessions"));
  EXPECT_S(mtlite_session_free(session), MTLITE_OK);
  EXPECT(mtlite_session_free(NULL), MTLITE_OK);
}

static void test_scores(mtlite_model* model, const struct inputs* in) {
  mtlite_session* gated = NULL;
  mtlite_session* one = NULL;
  mtlite_session* session; /* the one EXPECT_S reports on */
  const float* scores[OUTPUTS];
  const float* named = NULL;
  const float* weights = NULL;
  size_t n = 0, width = 0, o, r, g, e;
  float score = 0.0f, first[OUTPUTS][ROWS];

  EXPECT_M(mtlite_session_new(model, ROWS, MTLITE_SESSION_KEEP_GATES, &gated), MTLITE_OK);
  EXPECT_M(mtlite_session_new(model, 1, 0, &one), MTLITE_OK);
  if (!gated || !one) return;
  session = gated;
  CHECK(set_rows(session, in, 0, ROWS));
  EXPECT_S(mtlite_session_predict(session, ROWS), MTLITE_OK);
  EXPECT_S(mtlite_session_rows(session, &n), MTLITE_OK);
  CHECK(n == ROWS);
  for (o = 0; o < OUTPUTS; ++o) {
    EXPECT_S(mtlite_session_scores(session, o, &scores[o], &n), MTLITE_OK);
    CHECK(n == ROWS);
    for (r = 0; r < ROWS; ++r) {
      CHECK(scores[o][r] > 0.0f && scores[o][r] < 1.0f); /* every output is a probability */
      EXPECT_S(mtlite_session_score(session, o, r, &score), MTLITE_OK);
      CHECK(score == scores[o][r]);
      first[o][r] = scores[o][r];
    }
  }
  /* pCTCVR = pCTR x pCVR. */
  for (r = 0; r < ROWS; ++r)
    CHECK(fabsf(scores[OUT_CTCVR][r] - scores[OUT_CLICK][r] * scores[OUT_PURCHASE][r]) <= 1e-6f);
  EXPECT_S(mtlite_session_scores_by_name(session, "purchase", &named, &n), MTLITE_OK);
  CHECK(named == scores[OUT_PURCHASE] && n == ROWS);
  /* The rows differ (different items, devices, prices): the inputs reach the model. */
  CHECK(scores[OUT_CLICK][0] != scores[OUT_CLICK][1] || scores[OUT_PURCHASE][0] != scores[OUT_PURCHASE][1]);

  /* Gates: a softmax over the 3 experts per row. */
  for (g = 0; g < 2; ++g)
    for (r = 0; r < ROWS; ++r) {
      float sum = 0.0f;
      EXPECT_S(mtlite_session_gate(session, g, r, &weights, &width), MTLITE_OK);
      CHECK(width == 3);
      for (e = 0; e < width; ++e) {
        CHECK(weights[e] > 0.0f && weights[e] < 1.0f);
        sum += weights[e];
      }
      CHECK(fabsf(sum - 1.0f) < 1e-5f);
    }
  EXPECT_S(mtlite_session_gate(session, 0, ROWS, &weights, &width), MTLITE_ERROR_OUT_OF_RANGE);

  /* Each row alone, in a session of one row, scores as in the batch; by name as by index. */
  session = one;
  for (r = 0; r < ROWS; ++r) {
    uint32_t offsets[2];
    offsets[0] = 0;
    offsets[1] = in->offsets[r + 1] - in->offsets[r];
    EXPECT_S(mtlite_session_set_ids_by_name(one, "device", &in->device[r], 1), MTLITE_OK);
    EXPECT_S(mtlite_session_set_ids_by_name(one, "item_id", &in->item[r], 1), MTLITE_OK);
    EXPECT_S(mtlite_session_set_ids_by_name(one, "sku", &in->sku[r], 1), MTLITE_OK);
    EXPECT_S(mtlite_session_set_bags_by_name(one, "tags", in->bag_ids + in->offsets[r], offsets[1], offsets, 1),
             MTLITE_OK);
    EXPECT_S(mtlite_session_set_dense_by_name(one, "price", &prices[r], 1), MTLITE_OK);
    EXPECT_S(mtlite_session_set_dense_by_name(one, "discount", &discounts[r], 1), MTLITE_OK);
    EXPECT_S(mtlite_session_predict(one, 1), MTLITE_OK);
    for (o = 0; o < OUTPUTS; ++o) {
      EXPECT_S(mtlite_session_score(one, o, 0, &score), MTLITE_OK);
      CHECK(score == first[o][r]);
    }
  }
  /* An empty batch is a batch. */
  CHECK(set_rows(one, in, 0, 0));
  EXPECT_S(mtlite_session_predict(one, 0), MTLITE_OK);
  EXPECT_S(mtlite_session_scores(one, 0, &named, &n), MTLITE_OK);
  CHECK(n == 0);
  /* A session without KEEP_GATES scores the same. */
  CHECK(set_rows(one, in, 3, 1));
  EXPECT_S(mtlite_session_predict(one, 1), MTLITE_OK);
  EXPECT_S(mtlite_session_score(one, OUT_CTCVR, 0, &score), MTLITE_OK);
  CHECK(score == first[OUT_CTCVR][3]);
  EXPECT_S(mtlite_session_free(one), MTLITE_OK);
  EXPECT(mtlite_session_free(gated), MTLITE_OK);
}

/* Setting columns, predicting, failing and reading scores allocate nothing once the session
 * exists (and its bag buffer has held the largest bag column). */
static void test_no_allocation(mtlite_model* model, const struct inputs* in) {
  mtlite_session* session = NULL;
  const float* scores = NULL;
  float nan_price[ROWS];
  size_t n = 0, i;
  EXPECT_M(mtlite_session_new(model, ROWS, MTLITE_SESSION_KEEP_GATES, &session), MTLITE_OK);
  if (!session) return;
  memcpy(nan_price, prices, sizeof nan_price);
  nan_price[1] = (float)NAN;
  CHECK(set_rows(session, in, 0, ROWS));
#if COUNT_ALLOCATIONS
  {
    long before = allocations;
    for (i = 0; i < 10; ++i) {
      CHECK(set_rows(session, in, 0, ROWS));
      EXPECT_S(mtlite_session_predict(session, ROWS), MTLITE_OK);
      EXPECT_S(mtlite_session_scores(session, OUT_CTCVR, &scores, &n), MTLITE_OK);
      EXPECT_S(mtlite_session_set_dense(session, PRICE, nan_price, ROWS), MTLITE_OK);
      EXPECT_S(mtlite_session_predict(session, ROWS), MTLITE_ERROR_INVALID_ARGUMENT);
      EXPECT_S(mtlite_session_predict(session, ROWS + 1), MTLITE_ERROR_OUT_OF_RANGE);
    }
    CHECK(allocations == before);
    /* The count works: a session allocates. */
    mtlite_session_free(session);
    session = NULL;
    before = allocations;
    EXPECT_M(mtlite_session_new(model, ROWS, 0, &session), MTLITE_OK);
    CHECK(allocations > before);
  }
#else
  (void)scores, (void)n, (void)i;
  printf("SKIP predict allocates nothing: not counted under a sanitizer's allocator\n");
#endif
  EXPECT_S(mtlite_session_free(session), MTLITE_OK);
}

/* ---- threads: one model, one session per thread */

struct worker {
  mtlite_model* model;
  const struct inputs* in;
  float expected[ROWS];
  int mismatches, errors;
  char model_error[64];
};

static void* work(void* arg) {
  struct worker* w = arg;
  mtlite_session* session = NULL;
  size_t n, i, r;
  const float* scores;
  if (mtlite_session_new(w->model, ROWS, 0, &session) != MTLITE_OK) {
    ++w->errors;
    return NULL;
  }
  /* A failure on the shared model, recorded for this thread only. */
  if (mtlite_model_feature_index(w->model, "thread-only", &n) != MTLITE_ERROR_NOT_FOUND) ++w->errors;
  snprintf(w->model_error, sizeof w->model_error, "%s", mtlite_model_last_error(w->model));
  for (i = 0; i < 200; ++i) {
    if (!set_rows(session, w->in, 0, ROWS) || mtlite_session_predict(session, ROWS) != MTLITE_OK ||
        mtlite_session_scores(session, OUT_PURCHASE, &scores, &n) != MTLITE_OK || n != ROWS) {
      ++w->errors;
      break;
    }
    for (r = 0; r < ROWS; ++r) w->mismatches += scores[r] != w->expected[r];
  }
  mtlite_session_free(session);
  return NULL;
}

static void test_threads(mtlite_model* model, const struct inputs* in) {
  struct worker w[2];
  pthread_t threads[2];
  mtlite_session* session = NULL;
  const float* scores;
  size_t n, t;
  char before[128];

  EXPECT_M(mtlite_model_output_index(model, "main-thread-only", &n), MTLITE_ERROR_NOT_FOUND);
  snprintf(before, sizeof before, "%s", mtlite_model_last_error(model));
  EXPECT_M(mtlite_session_new(model, ROWS, 0, &session), MTLITE_OK);
  if (!session) return;
  CHECK(set_rows(session, in, 0, ROWS));
  EXPECT_S(mtlite_session_predict(session, ROWS), MTLITE_OK);
  EXPECT_S(mtlite_session_scores(session, OUT_PURCHASE, &scores, &n), MTLITE_OK);
  for (t = 0; t < 2; ++t) {
    w[t].model = model;
    w[t].in = in;
    memcpy(w[t].expected, scores, sizeof w[t].expected);
    w[t].mismatches = w[t].errors = 0;
    w[t].model_error[0] = '\0';
    CHECK(pthread_create(&threads[t], NULL, work, &w[t]) == 0);
  }
  for (t = 0; t < 2; ++t) {
    CHECK(pthread_join(threads[t], NULL) == 0);
    CHECK(w[t].errors == 0 && w[t].mismatches == 0);
    CHECK(contains(w[t].model_error, "no feature 'thread-only'"));
  }
  /* The threads' failures did not touch this thread's message. */
  CHECK(strcmp(mtlite_model_last_error(model), before) == 0 && contains(before, "main-thread-only"));
  EXPECT_S(mtlite_session_free(session), MTLITE_OK);
}

/* ---- models from memory, and the checkpoint */

static void test_memory_and_checkpoint(const char* checkpoint_path, const struct inputs* in, float expected) {
  mtlite_model* model = NULL;
  mtlite_session* session = NULL;
  char error[256];
  void* aligned = NULL;
  unsigned char* unaligned = malloc(image_size + 1);
  float score = 0.0f;
  const float* scores = NULL;
  size_t n = 0;
  int has = 1;

  /* Copied: the buffer may go at once. */
  memcpy(unaligned + 1, image, image_size);
  EXPECT(mtlite_model_open_memory(unaligned + 1, image_size, MTLITE_OPEN_IN_PLACE, &model, error, sizeof error),
         MTLITE_ERROR_INVALID_ARGUMENT);
  CHECK(contains(error, "64-byte aligned"));
  EXPECT(mtlite_model_open_memory(unaligned + 1, image_size, MTLITE_OPEN_SELFTEST, &model, error, sizeof error), MTLITE_OK);
  free(unaligned);
  if (model) {
    EXPECT_M(mtlite_session_new(model, ROWS, 0, &session), MTLITE_OK);
    CHECK(session && set_rows(session, in, 0, ROWS));
    EXPECT_S(mtlite_session_predict(session, ROWS), MTLITE_OK);
    EXPECT_S(mtlite_session_score(session, OUT_CTCVR, 4, &score), MTLITE_OK);
    CHECK(score == expected);
    EXPECT_S(mtlite_session_free(session), MTLITE_OK);
    EXPECT_M(mtlite_model_free(model), MTLITE_OK);
  }
  /* In place: a 64-byte aligned buffer, kept until the model goes. */
  model = NULL;
  CHECK(posix_memalign(&aligned, 64, image_size) == 0);
  memcpy(aligned, image, image_size);
  EXPECT(mtlite_model_open_memory(aligned, image_size, MTLITE_OPEN_IN_PLACE | MTLITE_OPEN_VERIFY_CHECKSUM, &model, error,
                                  sizeof error),
         MTLITE_OK);
  if (model) {
    EXPECT_M(mtlite_model_selftest(model), MTLITE_OK);
    EXPECT_M(mtlite_model_free(model), MTLITE_OK);
  }
  free(aligned);

  /* The f32 checkpoint: a binding, no self-test; the same features. */
  model = NULL;
  EXPECT(mtlite_model_open(checkpoint_path, MTLITE_OPEN_SELFTEST, &model, error, sizeof error), MTLITE_ERROR_UNSUPPORTED);
  CHECK(contains(error, "no self-test") && model == NULL);
  EXPECT(mtlite_model_open(checkpoint_path, MTLITE_OPEN_VERIFY_CHECKSUM, &model, error, sizeof error), MTLITE_OK);
  if (model) {
    EXPECT_M(mtlite_model_has_selftest(model, &has), MTLITE_OK);
    CHECK(has == 0);
    EXPECT_M(mtlite_model_selftest(model), MTLITE_ERROR_UNSUPPORTED);
    CHECK(contains(mtlite_model_last_error(model), "no self-test"));
    EXPECT_M(mtlite_session_new(model, ROWS, 0, &session), MTLITE_OK);
    CHECK(session && set_rows(session, in, 0, ROWS));
    EXPECT_S(mtlite_session_predict(session, ROWS), MTLITE_OK);
    /* Its outputs are click, cart, purchase, ctcvr. int8 against f32: close, not equal. */
    EXPECT_S(mtlite_session_scores_by_name(session, "ctcvr", &scores, &n), MTLITE_OK);
    CHECK(n == ROWS && scores[4] != expected && fabsf(scores[4] - expected) < 0.01f);
    EXPECT_S(mtlite_session_scores_by_name(session, "cart", &scores, &n), MTLITE_OK);
    EXPECT_S(mtlite_session_free(session), MTLITE_OK);
    EXPECT_M(mtlite_model_free(model), MTLITE_OK);
  }
}

int main(int argc, char** argv) {
  mtlite_model* model = NULL;
  mtlite_session* session = NULL;
  struct inputs in;
  char error[256];
  float ctcvr_row4 = 0.0f;

  if (argc != 3) {
    printf("usage: c_api_test MODEL.mtl CHECKPOINT.mtl\n");
    return 2;
  }
  image = read_all(argv[1], &image_size);
  snprintf(scratch_dir, sizeof scratch_dir, "/tmp/mtlite-c-api-XXXXXX");
  if (!image || !mkdtemp(scratch_dir)) {
    printf("cannot read %s or make a scratch folder\n", argv[1]);
    return 2;
  }
  printf("kernels %s, model %s (%zu bytes)\n", mtlite_kernel_level(), argv[1], image_size);

  test_library();
  test_open_errors(argv[1]);
  test_bad_bytes();
  test_no_binding();
  EXPECT(mtlite_model_open(argv[1], MTLITE_OPEN_VERIFY_CHECKSUM | MTLITE_OPEN_SELFTEST, &model, error, sizeof error),
         MTLITE_OK);
  if (model) {
    test_model_queries(model);
    test_ids(model);
    make_inputs(model, &in);
    test_session_errors(model, &in);
    test_scores(model, &in);
    test_no_allocation(model, &in);
    test_threads(model, &in);
    EXPECT_M(mtlite_session_new(model, ROWS, 0, &session), MTLITE_OK);
    if (session && set_rows(session, &in, 0, ROWS) && mtlite_session_predict(session, ROWS) == MTLITE_OK)
      EXPECT_S(mtlite_session_score(session, OUT_CTCVR, 4, &ctcvr_row4), MTLITE_OK);
    EXPECT_S(mtlite_session_free(session), MTLITE_OK);
    EXPECT_M(mtlite_model_free(model), MTLITE_OK);
    test_memory_and_checkpoint(argv[2], &in, ctcvr_row4);
  }
  EXPECT(mtlite_model_free(NULL), MTLITE_OK);

  remove(write_scratch("truncated.mtl", image, 0));
  remove(write_scratch("empty.mtl", image, 0));
  rmdir(scratch_dir);
  free(image);
  printf("%d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
