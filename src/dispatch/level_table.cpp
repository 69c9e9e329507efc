// One level's kernel table (kernels/dispatch.hpp), compiled once per level with that level's
// flags; meson.build passes the flags and MTLITE_LEVEL_TABLE, the name of the function that
// returns the table (avx2_table, ...). The program calls it only on a CPU that runs the level.
#include <mtlite/kernels/table.hpp>

#if !defined(MTLITE_LEVEL_TABLE) || !defined(MTLITE_LEVEL)
#error "meson.build defines MTLITE_LEVEL_TABLE and MTLITE_LEVEL for each level"
#endif

namespace mtlite::kernels {

namespace {
constexpr bool same(const char* a, const char* b) {
  return *a == *b && (*a == '\0' || same(a + 1, b + 1));
}
}  // namespace
// The flags must give the level's own kernels, not a lesser set.
static_assert(same(kTargetTable.level, MTLITE_LEVEL), "this level's flags compile another level");

const KernelTable& MTLITE_LEVEL_TABLE() noexcept { return kTargetTable; }

}  // namespace mtlite::kernels
