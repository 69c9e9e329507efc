// The kernels the runtime calls: the xsimd backend, or the scalar reference when built with
// MTLITE_NO_SIMD. Each kernel is defined once in ref/ (plain loops: the definition the tests
// hold every backend to) and vectorised once in simd/.
#pragma once

#include "../config.hpp"
#include "packed.hpp"
#include "ref/activation.hpp"
#include "ref/dense.hpp"
#include "ref/embedding.hpp"
#include "ref/mix.hpp"
#include "ref/softmax.hpp"

#if !defined(MTLITE_NO_SIMD)
#include "simd/activation.hpp"
#include "simd/dense.hpp"
#include "simd/embedding.hpp"
#include "simd/mix.hpp"
#include "simd/softmax.hpp"
#endif

namespace mtlite::kernels {

#if defined(MTLITE_NO_SIMD)
namespace backend = ref;
inline const char* backend_name() noexcept { return "scalar"; }
#else
namespace backend = simd;
inline const char* backend_name() noexcept { return simd::arch_name(); }
#endif

using backend::activation;
using backend::dense;
using backend::mix;
using backend::add_rows;
using backend::softmax;

}  // namespace mtlite::kernels
