// One level's kernel table (kernels/dispatch.hpp), compiled once per level with that level's
// flags; meson.build passes the flags and MTLITE_LEVEL_TABLE, the name of the function that
// returns the table (avx2_table, ...). The program calls it only on a CPU that runs the level.
#include <string_view>

#include <mtlite/kernels/table.hpp>

#if !defined(MTLITE_LEVEL_TABLE) || !defined(MTLITE_LEVEL)
#error "meson.build defines MTLITE_LEVEL_TABLE and MTLITE_LEVEL for each level"
#endif

namespace mtlite::kernels {

// The flags must give the level's own kernels, not a lesser set.
static_assert(std::string_view(kTargetTable.level) == MTLITE_LEVEL, "this level's flags compile another level");

const KernelTable& MTLITE_LEVEL_TABLE() noexcept { return kTargetTable; }

}  // namespace mtlite::kernels
