/* The smallest C program that serves a model file through the C library: what load_predict.cpp
 * does, through include/mtlite.h. */
#include <mtlite.h>
#include <stdio.h>

int main(int argc, char** argv) {
  mtlite_model* model = NULL;
  mtlite_session* session = NULL;
  char error[256];
  const float zero = 0.0f;
  const int64_t id = 0;
  const uint32_t empty[2] = {0, 0};
  size_t features = 0, outputs = 0, f, o;
  int st;
  if (argc != 2) return 2;
  if (mtlite_model_open(argv[1], 0, &model, error, sizeof error) != MTLITE_OK) {
    printf("%s\n", error);
    return 1;
  }
  st = mtlite_model_feature_count(model, &features) || mtlite_model_output_count(model, &outputs) ||
       mtlite_session_new(model, 1, 0, &session);
  for (f = 0; !st && f < features; ++f) {
    mtlite_feature_kind kind;
    st = mtlite_model_feature_kind(model, f, &kind) ||
         (kind == MTLITE_FEATURE_DENSE         ? mtlite_session_set_dense(session, f, &zero, 1)
          : kind == MTLITE_FEATURE_CATEGORICAL ? mtlite_session_set_ids(session, f, &id, 1)
                                               : mtlite_session_set_bags(session, f, &id, 0, empty, 1));
  }
  st = st || mtlite_session_predict(session, 1);
  for (o = 0; !st && o < outputs; ++o) {
    float score;
    st = mtlite_session_score(session, o, 0, &score);
    if (!st) printf("%.6f\n", (double)score);
  }
  if (st) printf("%s\n", session ? mtlite_session_last_error(session) : mtlite_model_last_error(model));
  mtlite_session_free(session);
  mtlite_model_free(model);
  return st ? 1 : 0;
}
