// mtlite's converter, offline: include this one header.
//
//   converter.hpp    float weights -> quantized, packed tensors; the file's tensor order
//   quantize.hpp     the f16 packer and the i8 and rows_q quantizers
//   writer.hpp       the .mtl file writer (durable, atomic)
//   safetensors.hpp  PyTorch's weights in: read, rename to mtlite's parameter names; write
#pragma once

#include "converter.hpp"
#include "quantize.hpp"
#include "safetensors.hpp"
#include "writer.hpp"
