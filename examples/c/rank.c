/* Ranking candidates from C (C99) through include/mtlite.h: open a model, list its outputs and
 * features, turn raw values into the ids training gave them, set the inputs by feature name,
 * predict, print the best candidates.
 *
 *   build/examples/c/rank MODEL.mtl [candidates]        (default 20, at most 256)
 *
 * MODEL.mtl has the features of tests/c_api/model.json (device, item_id, sku, tags, price,
 * discount). Every call is checked; a failure prints the library's message and exits with 1.
 *   cc rank.c $(pkg-config --cflags --libs mtlite-c)
 */
#include <mtlite.h>

#include <stdio.h>
#include <stdlib.h>

#define MAX_CANDIDATES 256
#define TOP 5
#define MAX_TAGS 4 /* ids per candidate's tags field */

static mtlite_model* model;
static mtlite_session* session;

/* What failed and why (a status's name and the library's message), then the exit: the
 * handles are released first. */
static void fail(const char* what, const char* why, const char* message) {
  fprintf(stderr, "rank: %s: %s: %s\n", what, why, message);
  if (mtlite_session_free(session) == MTLITE_OK) session = NULL;
  if (mtlite_model_free(model) != MTLITE_OK) fprintf(stderr, "rank: cannot free the model\n");
  exit(1);
}

/* Calls on the model report its message (the calling thread's last failure), calls on the
 * session the session's. */
#define ON_MODEL(what, call)                                        \
  do {                                                              \
    mtlite_status status_ = (call);                                 \
    if (status_ != MTLITE_OK) fail(what, mtlite_status_name(status_), mtlite_model_last_error(model)); \
  } while (0)
#define ON_SESSION(what, call)                                        \
  do {                                                                \
    mtlite_status status_ = (call);                                   \
    if (status_ != MTLITE_OK) fail(what, mtlite_status_name(status_), mtlite_session_last_error(session)); \
  } while (0)

static const char* const kinds[] = {"dense", "categorical", "multi-hot"};

int main(int argc, char** argv) {
  char error[512];
  size_t n = 20, count, i, o, best[TOP], top;
  size_t device, item_id, sku, tags;
  const float* scores;
  size_t rows;
  int64_t device_ids[MAX_CANDIDATES], item_ids[MAX_CANDIDATES], sku_ids[MAX_CANDIDATES];
  int64_t tag_ids[MAX_CANDIDATES * MAX_TAGS];
  uint32_t tag_offsets[MAX_CANDIDATES + 1];
  float prices[MAX_CANDIDATES], discounts[MAX_CANDIDATES];
  const char* name;
  mtlite_status status;

  if (argc < 2 || argc > 3 || (argc == 3 && ((n = strtoul(argv[2], NULL, 10)) == 0 || n > MAX_CANDIDATES))) {
    fprintf(stderr, "usage: rank MODEL.mtl [candidates 1..%d]\n", MAX_CANDIDATES);
    return 2;
  }
  /* The self-test at open: the scores the converter recorded must come out on this CPU. */
  status = mtlite_model_open(argv[1], MTLITE_OPEN_SELFTEST, &model, error, sizeof error);
  if (status != MTLITE_OK) fail("open", mtlite_status_name(status), error);

  ON_MODEL("outputs", mtlite_model_output_count(model, &count));
  printf("%s (mtlite %s, kernels %s): outputs", argv[1], mtlite_version(), mtlite_kernel_level());
  for (o = 0; o < count; ++o) {
    ON_MODEL("output name", mtlite_model_output_name(model, o, &name));
    printf(" %s", name);
  }
  ON_MODEL("features", mtlite_model_feature_count(model, &count));
  printf("; features");
  for (i = 0; i < count; ++i) {
    mtlite_feature_kind kind;
    ON_MODEL("feature name", mtlite_model_feature_name(model, i, &name));
    ON_MODEL("feature kind", mtlite_model_feature_kind(model, i, &kind));
    printf(" %s (%s)", name, kinds[kind]);
  }
  printf("\n");

  /* Raw values to ids, by the rules training stored in the model (its data binding). */
  ON_MODEL("device", mtlite_model_feature_index(model, "device", &device));
  ON_MODEL("item_id", mtlite_model_feature_index(model, "item_id", &item_id));
  ON_MODEL("sku", mtlite_model_feature_index(model, "sku", &sku));
  ON_MODEL("tags", mtlite_model_feature_index(model, "tags", &tags));
  tag_offsets[0] = 0;
  for (i = 0; i < n; ++i) {
    char text[32];
    size_t in_bag;
    ON_MODEL("device id", mtlite_model_id_string(model, device, "mobile", &device_ids[i]));
    ON_MODEL("item id", mtlite_model_id_int(model, item_id, (int64_t)(i * 7 % 200), &item_ids[i]));
    snprintf(text, sizeof text, "sku-%u", (unsigned)(i * 7 % 200));
    ON_MODEL("sku id", mtlite_model_id_string(model, sku, text, &sku_ids[i]));
    snprintf(text, sizeof text, "c%u|h%u", (unsigned)(i * 7 % 200 % 6), (unsigned)(i % 4));
    ON_MODEL("tag ids", mtlite_model_bag_ids(model, tags, text, tag_ids + tag_offsets[i], MAX_TAGS, &in_bag));
    tag_offsets[i + 1] = tag_offsets[i] + (uint32_t)in_bag;
    prices[i] = 5.0f + (float)(i % 9) * 2.5f;
    discounts[i] = (float)(i % 4) / 10.0f;
  }

  /* One session, the columns set by feature name, one predict for all candidates. */
  ON_MODEL("session", mtlite_session_new(model, n, 0, &session));
  ON_SESSION("device", mtlite_session_set_ids_by_name(session, "device", device_ids, n));
  ON_SESSION("item_id", mtlite_session_set_ids_by_name(session, "item_id", item_ids, n));
  ON_SESSION("sku", mtlite_session_set_ids_by_name(session, "sku", sku_ids, n));
  ON_SESSION("tags", mtlite_session_set_bags_by_name(session, "tags", tag_ids, tag_offsets[n], tag_offsets, n));
  ON_SESSION("price", mtlite_session_set_dense_by_name(session, "price", prices, n));
  ON_SESSION("discount", mtlite_session_set_dense_by_name(session, "discount", discounts, n));
  ON_SESSION("predict", mtlite_session_predict(session, n));

  /* The best TOP by the first output, each score checked: best[0..top) stays sorted, a better
   * score moves the worse ones down a place (the last falls off). */
  ON_MODEL("output name", mtlite_model_output_name(model, 0, &name));
  ON_SESSION("scores", mtlite_session_scores(session, 0, &scores, &rows));
  top = 0;
  for (i = 0; i < rows; ++i) {
    size_t at;
    if (!(scores[i] >= 0.0f && scores[i] <= 1.0f)) {
      snprintf(error, sizeof error, "candidate %u scored %g", (unsigned)i, (double)scores[i]);
      fail(name, "not a probability", error);
    }
    for (at = top < TOP ? top++ : TOP; at > 0 && scores[best[at - 1]] < scores[i]; --at)
      if (at < TOP) best[at] = best[at - 1];
    if (at < TOP) best[at] = i;
  }
  printf("top %u of %u candidates by %s:\n", (unsigned)top, (unsigned)rows, name);
  for (i = 0; i < top; ++i)
    printf("  item %3u  %.4f\n", (unsigned)(best[i] * 7 % 200), (double)scores[best[i]]);

  ON_SESSION("free session", mtlite_session_free(session));
  session = NULL;
  ON_MODEL("free model", mtlite_model_free(model));
  return 0;
}
