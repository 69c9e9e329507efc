// The doctest main of every suite. In a -Dsimd=dispatch build the per-level tests
// (tests/meson.build) set MTLITE_KERNELS: a level this CPU cannot run makes the suite a skip
// (exit 77) rather than a silent run at another level; an unknown one is a failure.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <mtlite/kernels/kernels.hpp>

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
#if defined(MTLITE_DISPATCH)
  if (const char* level = std::getenv("MTLITE_KERNELS"); level != nullptr && *level != '\0') {
    if (mtlite::kernels::detail_dispatch::find_level(level) != nullptr &&
        !mtlite::kernels::cpu_runs(level)) {
      std::printf("kernel level %s: not supported by this CPU (it runs: %s); skipped\n", level,
                  mtlite::kernels::supported_levels().c_str());
      return 77;
    }
    try {
      mtlite::kernels::level_from_environment();
    } catch (const std::exception& e) {
      std::printf("%s\n", e.what());
      return 1;
    }
  }
#endif
  return doctest::Context(argc, argv).run();
}
