/* The C API as installed (tests/consumer/run.sh): opens a model, runs its self-test, prints
 * the library's version and the self-test's status. */
#include <mtlite.h>
#include <stdio.h>

int main(int argc, char** argv) {
  mtlite_model* model = NULL;
  char error[256];
  mtlite_status st;
  if (argc != 2) return 2;
  st = mtlite_model_open(argv[1], MTLITE_OPEN_SELFTEST, &model, error, sizeof error);
  printf("mtlite %s (ABI %d, kernels %s): %s%s%s\n", mtlite_version(), mtlite_abi_version(), mtlite_kernel_level(),
         mtlite_status_name(st), st ? ": " : "", st ? error : "");
  mtlite_model_free(model);
  return st == MTLITE_OK && mtlite_abi_version() == MTLITE_C_ABI_VERSION ? 0 : 1;
}
