// libFuzzer entry point for the .mtl reader: any bytes at all must parse or throw mtlite::Error,
// never crash, read out of bounds, overflow or leak (build with -Db_sanitize=address,undefined).
// The checksum is not verified, so that mutations reach the structural checks behind it.
#include <cstddef>
#include <cstdint>

#include "mtlite/core/error.hpp"
#include "mtlite/format/reader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mtlite::format::ReadOptions options;
  options.verify_checksum = false;
  try {
    const mtlite::format::FileView view = mtlite::format::FileView::parse(data, size, options);
    // What the reader accepted must be readable: touch both ends of every tensor and name.
    volatile std::uint8_t sink = 0;
    for (const mtlite::format::TensorView& t : view.tensors()) {
      sink = sink ^ static_cast<std::uint8_t>(t.data[0]) ^ static_cast<std::uint8_t>(t.data[t.bytes - 1]);
      sink = sink ^ static_cast<std::uint8_t>(t.name.front()) ^ static_cast<std::uint8_t>(t.name.back());
      if (view.find(t.name) != &t) __builtin_trap();
    }
  } catch (const mtlite::Error&) {
  }
  return 0;
}
