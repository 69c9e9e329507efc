// Whether a binding and a spec describe the same features and tasks. check() asks it of a fitted
// binding; fit() asks it before the vocabulary sizes are known, so it can leave them out.
#pragma once

#include "binding.hpp"

#include <mtlite/spec.hpp>

namespace mtlite::data {

// Throws naming the first feature or task that differs in name, kind or id mapping; with
// `sizes`, also a vocabulary feature whose spec size is not its vocabulary's.
void check_against(const DataBinding& b, const Spec& spec, bool sizes);

}  // namespace mtlite::data
