// One level's trainer loops (offline/train/math.hpp), compiled beside the level's kernel table
// (level_table.cpp) with the same flags; meson.build passes MTLITE_LEVEL_MATH_TABLE, the name of
// the function that returns them (avx2_math_table, ...).
#include <string_view>

#include <mtlite/offline/train/math_kernels.hpp>

#if !defined(MTLITE_LEVEL_MATH_TABLE) || !defined(MTLITE_LEVEL)
#error "meson.build defines MTLITE_LEVEL_MATH_TABLE and MTLITE_LEVEL for each level"
#endif

namespace mtlite::train::math {

static_assert(std::string_view(impl::kTargetMathTable.level) == MTLITE_LEVEL, "this level's flags compile another level");

const MathTable& MTLITE_LEVEL_MATH_TABLE() noexcept { return impl::kTargetMathTable; }

}  // namespace mtlite::train::math
