// The kernels the runtime calls: the xsimd backend, or the scalar reference when built with
// MTLITE_NO_SIMD. Each kernel is defined once in ref/ (plain loops: the definition the tests
// hold every backend to) and vectorised once in simd/.
//
// The quantized kernels (f16.hpp and quantize.hpp hold the conversions and formats):
//   dense_f16     f16 panels16 weights
//   dense_i8      i8 panels16x4 weights, inputs quantized per row to u8 in a caller's scratch
//                 of dense_i8_scratch_bytes(m, k) bytes; quantize_activations is its first step
//   add_rows_f16, add_rows_q8, add_rows_q4   embedding bags over f16 / rows_q tables
#pragma once

#include "../core/config.hpp"
#include "f16.hpp"
#include "i8.hpp"
#include "packed.hpp"
#include "ref/activation.hpp"
#include "ref/dense.hpp"
#include "ref/dense_f16.hpp"
#include "ref/dense_i8.hpp"
#include "ref/embedding.hpp"
#include "ref/mix.hpp"
#include "ref/softmax.hpp"

#if !defined(MTLITE_NO_SIMD)
#include "simd/activation.hpp"
#include "simd/dense.hpp"
#include "simd/dense_f16.hpp"
#include "simd/dense_i8.hpp"
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
using backend::dense_f16;
using backend::dense_i8;
using backend::quantize_activations;
using backend::add_rows_f16;
using backend::add_rows_q8;
using backend::add_rows_q4;

}  // namespace mtlite::kernels
