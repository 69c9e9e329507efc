// The .mtl file at the byte level: XXH64 (checksum.hpp), FileView::parse (reader.hpp), FileWriter
// (writer.hpp), MappedFile / read_file (mapped_file.hpp). The bad-file cases each patch a valid
// file (then re-seal its checksum, unless the case is about the checksum) and pin the message the
// reader gives, so every kind of damage is known to be rejected for its own reason.
#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "mtlite/format/checksum.hpp"
#include "mtlite/format/mapped_file.hpp"
#include "mtlite/format/reader.hpp"
#include "mtlite/mtlite.hpp"
#include "mtlite/offline/convert/convert.hpp"
#include "mtlite/offline/convert/writer.hpp"
#include "mtlite/offline/random_inputs.hpp"
#include <mtlite/offline/benchmark_model.hpp>

#include "peak_rss.hpp"
#include "support.hpp"

using mtlite::Json;
using namespace mtlite::format;
using mtlite::DType;
using mtlite::Layout;
using mtlite::tensor_bytes;
using Bytes = std::vector<std::byte>;
using mtlite_test::TempDir;

namespace {

// --- XXH64 -------------------------------------------------------------------------------------

// The bytes the reference vectors were computed over (with Debian's python3-xxhash 3.2.0, i.e.
// the xxHash library, not this code): a 64-bit LCG's top byte.
Bytes pattern(std::size_t n) {
  Bytes out(n);
  std::uint64_t s = 1;
  for (std::size_t i = 0; i < n; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    out[i] = static_cast<std::byte>(s >> 56);
  }
  return out;
}

// xxh64(pattern(n)) for n = 0..100, seed 0.
const std::uint64_t kSeed0[101] = {
    0xEF46DB3751D8E999ull, 0xF88DBA187615C755ull, 0x50FAA590AC3C7F57ull,
    0xA8289444BACB8722ull, 0xB5F3937E33746DFEull, 0x2E5EFE3509569597ull,
    0xEB6051D18174192Bull, 0x14B81207FEBDE331ull, 0x483DBBB3EFAF16AFull,
    0x0FAA477E430AE42Eull, 0x670253B153121CB6ull, 0xF34592A9434DA3A2ull,
    0x0CB8C8F484A741A2ull, 0xE3D4FA5F5DA38E9Bull, 0x30995BCF4EC2012Full,
    0x343384BE1B80B003ull, 0x45E3168C5A177612ull, 0x44570E72B4CAEF4Full,
    0x78D211E211D32644ull, 0x665978A8FF0D6E51ull, 0xD84787CA91459C0Cull,
    0xC5381E37BB062C31ull, 0x5BD1E005E8C83D4Bull, 0xAFE658F8AFC62F32ull,
    0x9E314A2F9B6938F6ull, 0x2E8E2082B5D9C11Eull, 0xB8BDC8B79D93C2CCull,
    0xC9CE15F79E8928A5ull, 0xEEB995DDB40A9292ull, 0x46636592094A2BE3ull,
    0x8370EC89FE45C4B0ull, 0xF5C9F1CA24BFD59Eull, 0x9D7BE8531562310Dull,
    0x0CA16790699C7125ull, 0x3FE30A111D6728E6ull, 0x0367C9B9EBF1081Eull,
    0x632CE8DEE6E51E15ull, 0xD0739000FF139813ull, 0x9ECB7786D0D8C3E7ull,
    0x6F5BBEAC4CCBD60Cull, 0xE03614343FFC7287ull, 0x9EA11C823589AF14ull,
    0x894CBB8FF739DC55ull, 0xCA3D850166FC6FCBull, 0x68853B75785D7E29ull,
    0x512E9D7FA6D88B10ull, 0x0D1EC97CCC4E2B09ull, 0x6047AE6B891EDA8Dull,
    0x857768EC452B5C2Bull, 0x3BC14E0E0525ED40ull, 0x82C679E2B81B65E2ull,
    0x74333584F167828Aull, 0x538B0185EA6EA5B0ull, 0xEBC739905D79BBA6ull,
    0x934FF58042694F35ull, 0x2D7773C8C9331578ull, 0xCDF33085CC0D73B1ull,
    0xE8C2BCADBA0A1922ull, 0xF361A5A6D1AF9262ull, 0x11C18097EED7EF92ull,
    0xA0AE3279FAC850FDull, 0xDF2E50950C4B5516ull, 0x04C9E0B30634ABCAull,
    0xA333BAEF911FF536ull, 0x3D88D4FD7DECCFC0ull, 0xAC4A4540F43C6383ull,
    0x38354557A8EBBDF4ull, 0xD78F29B318179D45ull, 0xBD177CADB9719232ull,
    0x6F903E35F5FBEF9Cull, 0x8115C1BC1C1257D6ull, 0x8D0F8468BBCC8D08ull,
    0x4448E48FB27D3DAEull, 0x917807F1962722C2ull, 0x5CD88E022876B453ull,
    0xC8A5785A584C4778ull, 0xCB475AA96E0BC02Dull, 0x5B19E9C7EDD72D4Dull,
    0x4ED4868068C01159ull, 0xF47D985FA105C23Bull, 0x0FE19A9C92CBFE0Cull,
    0x08FEDE616DFC8323ull, 0x47453A35E7A57EBEull, 0x63F9444C49776F74ull,
    0x083CE98EC3DA8AE8ull, 0xBE68E8656766865Eull, 0x0D670FCE516F0816ull,
    0x98011F105C7ACE00ull, 0xF323BACA84E237EDull, 0x1E2933EC0BE0F300ull,
    0x4B24D38C6094E7E7ull, 0x28EAC240BECCE8FAull, 0x53C87B93DEF27ECFull,
    0xDDE4B60BC9D223EFull, 0x7A787E6F14358267ull, 0xDF642FB32F6DD840ull,
    0xA8F804F4914616F9ull, 0x8AE27AEA5E912561ull, 0x989384F772FC18E3ull,
    0x451A327F7CD50628ull, 0x9EC1C0729F271FCDull,
};

struct SeededVector {
  std::size_t length;
  std::uint64_t seed;
  std::uint64_t hash;
};
const SeededVector kSeeded[] = {
    {0, 0x0000000000000001ull, 0xD5AFBA1336A3BE4Bull},
    {1, 0x0000000000000001ull, 0x08F0877BB9F133CBull},
    {3, 0x0000000000000001ull, 0x55DE651113B370E6ull},
    {4, 0x0000000000000001ull, 0x5BE2CDC5D9A9AB1Dull},
    {7, 0x0000000000000001ull, 0x77FE2BBC5EDB32DAull},
    {8, 0x0000000000000001ull, 0x343B15EA0E4F03F4ull},
    {31, 0x0000000000000001ull, 0x5DC53EAC6371C1F5ull},
    {32, 0x0000000000000001ull, 0x063D51318AEB4FB8ull},
    {33, 0x0000000000000001ull, 0x1B6ADDC68E1F9AD3ull},
    {63, 0x0000000000000001ull, 0x1EC21128C545D766ull},
    {64, 0x0000000000000001ull, 0x057FDF305440A0F5ull},
    {100, 0x0000000000000001ull, 0x94D4EB4025E4F183ull},
    {1000, 0x0000000000000001ull, 0xD8702D00715EEDEBull},
    {0, 0x9E3779B97F4A7C15ull, 0xC4349FC93C010000ull},
    {1, 0x9E3779B97F4A7C15ull, 0x247E88452CFEB326ull},
    {3, 0x9E3779B97F4A7C15ull, 0x78593891BAC2B4DDull},
    {4, 0x9E3779B97F4A7C15ull, 0xCF7604471137B8CCull},
    {7, 0x9E3779B97F4A7C15ull, 0xB69638B354CF600Dull},
    {8, 0x9E3779B97F4A7C15ull, 0x52A58BE1211EE0FCull},
    {31, 0x9E3779B97F4A7C15ull, 0x0845B4F17D385F61ull},
    {32, 0x9E3779B97F4A7C15ull, 0x8A8D5F0849B0748Eull},
    {33, 0x9E3779B97F4A7C15ull, 0x23CFE2AFCADC2DF8ull},
    {63, 0x9E3779B97F4A7C15ull, 0x0B6D1A6F7FADD716ull},
    {64, 0x9E3779B97F4A7C15ull, 0x9A42644266A8CA8Cull},
    {100, 0x9E3779B97F4A7C15ull, 0x4CD957F04F612575ull},
    {1000, 0x9E3779B97F4A7C15ull, 0xD77A192ACAB631EEull},
    {0, 0xFFFFFFFFFFFFFFFFull, 0x298F4C84B24F5380ull},
    {1, 0xFFFFFFFFFFFFFFFFull, 0xDA2B9528D3D7F4C8ull},
    {3, 0xFFFFFFFFFFFFFFFFull, 0x0821B0CA0620429Eull},
    {4, 0xFFFFFFFFFFFFFFFFull, 0x2421748637C965ADull},
    {7, 0xFFFFFFFFFFFFFFFFull, 0xC2647FB253DFCB80ull},
    {8, 0xFFFFFFFFFFFFFFFFull, 0xCDFF83E824A1FA87ull},
    {31, 0xFFFFFFFFFFFFFFFFull, 0x90FAC11C3FB0D5F2ull},
    {32, 0xFFFFFFFFFFFFFFFFull, 0xA8CECAF697FB0800ull},
    {33, 0xFFFFFFFFFFFFFFFFull, 0x335E456ECB6D6396ull},
    {63, 0xFFFFFFFFFFFFFFFFull, 0xA6B52A8117981968ull},
    {64, 0xFFFFFFFFFFFFFFFFull, 0xBCC4D31BBB40B493ull},
    {100, 0xFFFFFFFFFFFFFFFFull, 0x417B90B63F61C2C0ull},
    {1000, 0xFFFFFFFFFFFFFFFFull, 0x87546DD49FA1DA33ull},
};

std::uint64_t hash_of(const Bytes& b, std::size_t n, std::uint64_t seed = 0) { return xxh64(b.data(), n, seed); }

// --- files -------------------------------------------------------------------------------------

// Header field offsets (FORMAT.md).
constexpr std::uint64_t kMajorAt = 8, kMinorAt = 10, kHeaderBytesAt = 12, kFileBytesAt = 16, kMetaOffsetAt = 24,
                        kMetaBytesAt = 32, kTableOffsetAt = 40, kCountAt = 48, kFlagsAt = 52, kChecksumAt = 56;
// Table entry field offsets.
constexpr std::uint64_t kNameOffset = 0, kNameBytes = 8, kDType = 12, kLayout = 13, kRank = 14, kReserved = 15,
                        kDims = 16, kDataOffset = 48, kDataBytes = 56;

template <class T>
void put(Bytes& b, std::uint64_t at, T v) {
  REQUIRE(at + sizeof(T) <= b.size());
  for (std::size_t i = 0; i < sizeof(T); ++i) b[at + i] = static_cast<std::byte>((std::uint64_t(v) >> (8 * i)) & 0xff);
}
template <class T>
T get(const Bytes& b, std::uint64_t at) {
  REQUIRE(at + sizeof(T) <= b.size());
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) v |= std::uint64_t(std::to_integer<unsigned>(b[at + i])) << (8 * i);
  return static_cast<T>(v);
}

// The checksum of a patched file made right again.
void reseal(Bytes& b) { put<std::uint64_t>(b, kChecksumAt, xxh64(b.data() + 64, b.size() - 64)); }

std::uint64_t entry_at(const Bytes& b, std::uint32_t i) { return get<std::uint64_t>(b, kTableOffsetAt) + 64ull * i; }
std::uint64_t entry_field(const Bytes& b, std::uint32_t i, std::uint64_t field) {
  return get<std::uint64_t>(b, entry_at(b, i) + field);
}

struct Sample {
  std::string name;
  DType dtype;
  Layout layout;
  std::vector<std::uint64_t> shape;
  Bytes data;
};

Bytes filler(std::size_t n, unsigned salt) {
  Bytes out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::byte>((i * 131 + salt * 17 + (i >> 8)) & 0xff);
  return out;
}

// Entry 0 and 2 have names of the same length; 0 and 1 are 256 and 64 bytes (contiguous in the
// file); entry 3 (80 bytes) is not a multiple of 64 and has a non-ASCII name.
std::vector<Sample> samples() {
  return {
      {"a.weight", DType::f32, Layout::panels16, {16, 4}, filler(256, 1)},
      {"a.bias", DType::f32, Layout::padded16, {16}, filler(64, 2)},
      {"b.weight", DType::i8, Layout::panels16x4, {20, 6}, filler(256, 3)},
      {"emb.\xc3\xbc", DType::u8, Layout::rows_q, {5, 3}, filler(80, 4)},
  };
}

Json good_meta() {
  return Json::object()
      .set("format", "mtlite")
      .set("spec", Json::object().set("tasks", Json::array({"ctr", "cvr"})).set("units", 16))
      .set("note", "caf\xc3\xa9");
}

FileWriter good_writer() {
  FileWriter w;
  w.set_metadata(good_meta());
  for (const Sample& s : samples()) w.add(s.name, s.dtype, s.layout, s.shape, s.data.data(), s.data.size());
  return w;
}

const Bytes& good_file() {
  static const Bytes file = good_writer().bytes();
  return file;
}

std::string error_of(const Bytes& b, ReadOptions options = {}) {
  try {
    FileView::parse(b.data(), b.size(), options);
  } catch (const mtlite::Error& e) {
    return e.what();
  }
  return "(parsed)";
}

// The good file with one header field changed (and the checksum re-sealed): parse's message.
template <class T>
std::string with_header(std::uint64_t at, T v) {
  Bytes b = good_file();
  put<T>(b, at, v);
  reseal(b);
  return error_of(b);
}
// The same for a field of table entry i.
template <class T>
std::string with_entry(std::uint32_t i, std::uint64_t field, T v) {
  Bytes b = good_file();
  put<T>(b, entry_at(b, i) + field, v);
  reseal(b);
  return error_of(b);
}

std::string range(std::uint64_t begin, std::uint64_t bytes) {
  return "[" + std::to_string(begin) + ", " + std::to_string(begin + bytes) + ")";
}

Bytes slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Bytes out(chars.size());
  if (!chars.empty()) std::memcpy(out.data(), chars.data(), chars.size());
  return out;
}

void check_matches_samples(const FileView& view, const std::vector<Sample>& want) {
  REQUIRE(view.tensors().size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    const TensorView& t = view.tensors()[i];
    CAPTURE(want[i].name);
    CHECK(t.name == want[i].name);
    CHECK(t.dtype == want[i].dtype);
    CHECK(t.layout == want[i].layout);
    CHECK(t.shape == want[i].shape);
    REQUIRE(t.bytes == want[i].data.size());
    CHECK(std::memcmp(t.data, want[i].data.data(), t.bytes) == 0);
    CHECK(view.find(want[i].name) == &t);
  }
}

}  // namespace

// ================================================================================================
TEST_SUITE_BEGIN("format");

TEST_CASE("xxh64: published value for the empty input, and reference vectors") {
  CHECK(xxh64(nullptr, 0) == 0xEF46DB3751D8E999ull);
  CHECK(xxh64("", 0, 0) == 0xEF46DB3751D8E999ull);
  CHECK(xxh64("a", 1) == 0xD24EC4F1A98C6E5Bull);
  CHECK(xxh64("abc", 3) == 0x44BC2CF5AD770999ull);
  const char fox[] = "The quick brown fox jumps over the lazy dog";
  CHECK(xxh64(fox, sizeof fox - 1) == 0x0B242D361FDA71BCull);

  const Bytes big = pattern(1 << 20);
  for (std::size_t n = 0; n <= 100; ++n) {
    CAPTURE(n);
    CHECK(hash_of(big, n) == kSeed0[n]);
  }
  for (const SeededVector& v : kSeeded) {
    CAPTURE(v.length);
    CAPTURE(v.seed);
    CHECK(hash_of(big, v.length, v.seed) == v.hash);
  }
  CHECK(hash_of(big, big.size()) == 0x3FE5CC6CF6799583ull);
  CHECK(hash_of(big, big.size() - 7) == 0x5177D9BEE2CE2731ull);
}

TEST_CASE("xxh64: unaligned input and the streaming state give the one-shot result") {
  const Bytes data = pattern(4096 + 64);
  // Misaligned starts: the same bytes at every offset within a 64-byte line.
  for (std::size_t shift = 0; shift < 16; ++shift) {
    Bytes copy(200 + shift);
    std::memcpy(copy.data() + shift, data.data(), 200);
    CHECK(xxh64(copy.data() + shift, 200) == hash_of(data, 200));
  }
  // Every split of inputs up to 100 bytes into two pieces, and three pieces for some.
  for (std::size_t n = 0; n <= 100; ++n) {
    for (std::size_t cut = 0; cut <= n; ++cut) {
      Xxh64 s;
      s.update(data.data(), cut);
      s.update(data.data() + cut, n - cut);
      CHECK(s.digest() == kSeed0[n]);
      if (cut >= 3) {
        Xxh64 t(7);
        t.update(data.data(), cut / 3);
        t.update(data.data() + cut / 3, cut - cut / 3);
        t.update(data.data() + cut, n - cut);
        CHECK(t.digest() == xxh64(data.data(), n, 7));
      }
    }
  }
  // 1 MiB in random chunk sizes; digest() may be called midway.
  const Bytes big = pattern(1 << 20);
  std::mt19937_64 rng(42);
  Xxh64 s;
  std::size_t at = 0;
  while (at < big.size()) {
    const std::size_t n = std::min<std::size_t>(big.size() - at, rng() % 3000);
    s.update(big.data() + at, n);
    at += n;
    if (at == 1000 * 33) CHECK(s.digest() == hash_of(big, at));
  }
  CHECK(s.digest() == 0x3FE5CC6CF6799583ull);
}

TEST_CASE("xxh64: throughput (reported, not asserted: debug and sanitizer builds are slow)") {
  const Bytes data = pattern(64 << 20);
  std::uint64_t sink = 0;
  double best = 1e9;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    sink ^= xxh64(data.data(), data.size());
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  MESSAGE("xxh64: " << double(data.size()) / best / 1e9 << " GB/s over 64 MiB (hash " << sink << ")");
  CHECK(sink != 0);
}

// --- round trips ----------------------------------------------------------------------------------

TEST_CASE("round trip: FileWriter -> write -> MappedFile / read_file -> FileView") {
  TempDir dir;
  const std::string path = dir.path + "/model.mtl";
  const FileWriter w = good_writer();
  w.write(path);
  CHECK(dir.entries() == std::vector<std::string>{"model.mtl"});

  const Bytes image = w.bytes();
  CHECK(image.size() == w.file_bytes());
  CHECK(slurp(path) == image);  // write() streams exactly what bytes() builds

  MappedFile mapped = MappedFile::open(path);
  CHECK(mapped.mapped());
  REQUIRE(mapped.size() == image.size());
  FileBuffer owned = read_file(path);
  REQUIRE(owned.size() == image.size());
  CHECK(reinterpret_cast<std::uintptr_t>(owned.data()) % 64 == 0);
  CHECK(reinterpret_cast<std::uintptr_t>(mapped.data()) % 64 == 0);

  const std::vector<Sample> want = samples();
  for (const std::byte* data : {mapped.data(), static_cast<const std::byte*>(owned.data()), image.data()}) {
    const FileView view = FileView::parse(data, image.size());
    CHECK(view.metadata() == good_meta());
    CHECK(view.data() == data);
    check_matches_samples(view, want);
    CHECK(view.find("nope") == nullptr);
    CHECK(view.find("") == nullptr);
    CHECK(view.find("a.weigh") == nullptr);

    const FileHeader& h = view.header();
    CHECK(std::memcmp(h.magic, kMagic, 8) == 0);
    CHECK(h.major == 1);
    CHECK(h.minor == 0);
    CHECK(h.header_bytes == 64);
    CHECK(h.file_bytes == image.size());
    CHECK(h.meta_offset == 64);
    CHECK(h.table_offset % 8 == 0);
    CHECK(h.table_offset >= h.meta_offset + h.meta_bytes);
    CHECK(h.tensor_count == 4);
    CHECK(h.flags == 0);
    CHECK(h.checksum == xxh64(data + 64, image.size() - 64));

    // Regions in FORMAT.md's order: metadata, table, names, then data, every tensor 64-aligned,
    // in memory too, and the 256- and 64-byte tensors back to back.
    std::uint64_t previous_end = entry_field(image, 3, kNameOffset) + want[3].name.size();
    for (std::size_t i = 0; i < want.size(); ++i) {
      const std::uint64_t offset = static_cast<std::uint64_t>(view.tensors()[i].data - data);
      CHECK(offset % 64 == 0);
      if (data != image.data()) CHECK(reinterpret_cast<std::uintptr_t>(view.tensors()[i].data) % 64 == 0);
      CHECK(offset >= previous_end);
      CHECK(offset - previous_end < 64);  // no more than padding in between
      previous_end = offset + view.tensors()[i].bytes;
    }
    CHECK(view.tensors()[1].data == view.tensors()[0].data + 256);
    CHECK(view.tensors()[2].data == view.tensors()[1].data + 64);
    CHECK(view.tensors()[3].data == view.tensors()[2].data + 256);
    CHECK(previous_end == image.size());
  }
  CHECK(entry_field(image, 0, kNameOffset) == get<std::uint64_t>(image, kTableOffsetAt) + 4 * 64);

  // Moving a MappedFile moves the mapping.
  const std::byte* before = mapped.data();
  MappedFile moved = std::move(mapped);
  CHECK(moved.data() == before);
  CHECK(moved.mapped());
  CHECK(mapped.data() == nullptr);  // NOLINT(bugprone-use-after-move): the moved-from state is empty
  CHECK(mapped.size() == 0);
  CHECK(!mapped.mapped());
  MappedFile other;
  other = std::move(moved);
  CHECK(other.data() == before);
  CHECK(FileView::parse(other.data(), other.size()).tensors().size() == 4);
}

TEST_CASE("round trip: empty model, borrowed data, many tensors, a 16 MiB tensor") {
  {
    FileWriter w;
    const Bytes b = w.bytes();
    const FileView v = FileView::parse(b.data(), b.size());
    CHECK(v.tensors().empty());
    CHECK(v.metadata() == Json::object());
    CHECK(v.header().tensor_count == 0);
  }
  {
    // add_borrowed: no copy, same file as add().
    const std::vector<Sample> want = samples();
    FileWriter w;
    w.set_metadata(good_meta());
    for (const Sample& s : want) w.add_borrowed(s.name, s.dtype, s.layout, s.shape, s.data.data(), s.data.size());
    CHECK(w.bytes() == good_file());
  }
  {
    // 1,000 small tensors, 64-byte multiples: all contiguous.
    FileWriter w;
    const Bytes data = filler(64 * 3, 9);
    for (int i = 0; i < 1000; ++i)
      w.add("t" + std::to_string(i), DType::f32, Layout::plain, {4, 12}, data.data(), data.size());
    const Bytes b = w.bytes();
    const FileView v = FileView::parse(b.data(), b.size());
    REQUIRE(v.tensors().size() == 1000);
    for (int i = 1; i < 1000; ++i) CHECK(v.tensors()[i].data == v.tensors()[i - 1].data + 192);
    CHECK(v.find("t999") == &v.tensors()[999]);
    CHECK(v.find("t1000") == nullptr);
  }
  {
    // A large tensor through write() with add_borrowed (one copy of the data in memory).
    TempDir dir;
    const Bytes big = pattern(16 << 20);
    FileWriter w;
    w.add_borrowed("embedding.big", DType::f16, Layout::plain, {1 << 13, 1 << 10}, big.data(), big.size());
    w.write(dir.path + "/big.mtl");
    MappedFile m = MappedFile::open(dir.path + "/big.mtl");
    const FileView v = FileView::parse(m.data(), m.size());
    REQUIRE(v.tensors().size() == 1);
    REQUIRE(v.tensors()[0].bytes == big.size());
    CHECK(std::memcmp(v.tensors()[0].data, big.data(), big.size()) == 0);
  }
}

TEST_CASE("the reader accepts the regions in any order") {
  // Rebuild the good file as header | data | metadata | table | names.
  const Bytes& g = good_file();
  const FileView gv = FileView::parse(g.data(), g.size());
  Bytes out(g.begin(), g.begin() + 64);
  auto append = [&](const std::byte* p, std::size_t n, std::size_t align) {
    while (out.size() % align) out.push_back(std::byte{0});
    const std::uint64_t at = out.size();
    out.insert(out.end(), p, p + n);
    return at;
  };
  std::vector<std::uint64_t> data_at, name_at;
  for (const TensorView& t : gv.tensors()) data_at.push_back(append(t.data, t.bytes, 64));
  const std::uint64_t meta_at =
      append(g.data() + get<std::uint64_t>(g, kMetaOffsetAt), get<std::uint64_t>(g, kMetaBytesAt), 1);
  const std::uint64_t table_at = append(g.data() + get<std::uint64_t>(g, kTableOffsetAt), 4 * 64, 8);
  for (const TensorView& t : gv.tensors())
    name_at.push_back(append(reinterpret_cast<const std::byte*>(t.name.data()), t.name.size(), 1));
  put<std::uint64_t>(out, kFileBytesAt, out.size());
  put<std::uint64_t>(out, kMetaOffsetAt, meta_at);
  put<std::uint64_t>(out, kTableOffsetAt, table_at);
  for (std::uint32_t i = 0; i < 4; ++i) {
    put<std::uint64_t>(out, table_at + 64 * i + kNameOffset, name_at[i]);
    put<std::uint64_t>(out, table_at + 64 * i + kDataOffset, data_at[i]);
  }
  reseal(out);
  const FileView v = FileView::parse(out.data(), out.size());
  CHECK(v.metadata() == good_meta());
  check_matches_samples(v, samples());
  CHECK(v.tensors()[0].data == out.data() + 64);
}

TEST_CASE("FileWriter refuses what the reader would refuse") {
  FileWriter w;
  const Bytes d = filler(256, 0);
  CHECK(mtlite_test::error_of([&] { w.set_metadata(Json::array()); }) ==
        "model file: metadata must be a JSON object, got an array");
  CHECK(mtlite_test::error_of([&] { w.add("x", DType::f32, Layout::plain, {2, 3}, d.data(), 25); }) ==
        "model file: tensor 'x': 25 bytes given, f32 plain [2, 3] needs 24");
  CHECK(mtlite_test::error_of([&] { w.add("", DType::f32, Layout::plain, {1}, d.data(), 4); }) ==
        "model file: tensor '': a name is 1..1024 bytes, this one 0");
  CHECK(mtlite_test::error_of([&] { w.add(std::string(1025, 'n'), DType::f32, Layout::plain, {1}, d.data(), 4); })
            .find("a name is 1..1024 bytes, this one 1025") != std::string::npos);
  CHECK(mtlite_test::error_of([&] { w.add("a\nb", DType::f32, Layout::plain, {1}, d.data(), 4); }) ==
        "model file: tensor 'a\\x0ab': name has a control character (U+000A at byte 1)");
  CHECK(mtlite_test::error_of([&] { w.add("a\xff", DType::f32, Layout::plain, {1}, d.data(), 4); }) ==
        "model file: tensor 'a\\xff': name is not valid UTF-8 (at byte 1)");
  CHECK(mtlite_test::error_of([&] { w.add("x", DType::u4, Layout::plain, {8}, d.data(), 4); }) ==
        "model file: tensor 'x': u4 plain [8] has no valid size (a bad combination, a zero dim or an overflow)");
  CHECK(mtlite_test::error_of([&] { w.add("x", DType::f32, Layout::plain, {}, d.data(), 4); }) ==
        "model file: tensor 'x': rank 0, expected 1..4");
  CHECK(mtlite_test::error_of([&] { w.add("x", DType::f32, Layout::plain, {1, 1, 1, 1, 1}, d.data(), 4); }) ==
        "model file: tensor 'x': rank 5, expected 1..4");
  CHECK(mtlite_test::error_of([&] { w.add("x", static_cast<DType>(9), Layout::plain, {1}, d.data(), 4); }) ==
        "model file: tensor 'x': unknown dtype or layout code");
  CHECK(mtlite_test::error_of([&] { w.add("x", DType::f32, Layout::plain, {1}, nullptr, 4); }) ==
        "model file: tensor 'x': no data");
  w.add("x", DType::f32, Layout::plain, {1}, d.data(), 4);
  CHECK(mtlite_test::error_of([&] { w.add("x", DType::f32, Layout::plain, {1}, d.data(), 4); }) ==
        "model file: tensor 'x': added twice");
  CHECK(w.tensor_count() == 1);
  const Bytes b = w.bytes();
  CHECK(error_of(b) == "(parsed)");
}

// --- atomic writes -----------------------------------------------------------------------------------

TEST_CASE("write: a missing directory throws and leaves nothing behind") {
  TempDir dir;
  const std::string path = dir.path + "/missing/model.mtl";
  CHECK(mtlite_test::error_of([&] { good_writer().write(path); }) ==
        "model file: cannot write '" + path + "': No such file or directory");
  CHECK(dir.entries().empty());
}

TEST_CASE("write: overwriting replaces the file, no temporary file is left") {
  TempDir dir;
  const std::string path = dir.path + "/model.mtl";
  good_writer().write(path);
  FileWriter second;
  second.set_metadata(Json::object().set("format", "mtlite").set("version", 2));
  const Bytes d = filler(64, 5);
  second.add("only", DType::f32, Layout::padded16, {16}, d.data(), d.size());
  {
    // A reader that has the old file mapped keeps seeing the old file (rename, not overwrite).
    MappedFile old = MappedFile::open(path);
    second.write(path);
    CHECK(FileView::parse(old.data(), old.size()).tensors().size() == 4);
  }
  CHECK(slurp(path) == second.bytes());
  const FileBuffer now = read_file(path);
  const FileView v = FileView::parse(now.data(), now.size());
  CHECK(v.metadata().at("version").as_number() == 2);
  CHECK(dir.entries() == std::vector<std::string>{"model.mtl"});
}

TEST_CASE("write: a failed rename removes the temporary file") {
  TempDir dir;
  // The target is a directory: the temporary file is written and synced, the rename fails.
  const std::string path = dir.path + "/model.mtl";
  REQUIRE(::mkdir(path.c_str(), 0700) == 0);
  CHECK(mtlite_test::error_of([&] { good_writer().write(path); }) ==
        "model file: cannot replace '" + path + "': Is a directory");
  CHECK(dir.entries() == std::vector<std::string>{"model.mtl"});
  CHECK(std::filesystem::is_directory(path));
  CHECK(std::filesystem::is_empty(path));
}

TEST_CASE("write: a failure in the middle of writing keeps the old file and removes the temporary") {
  TempDir dir;
  const std::string path = dir.path + "/model.mtl";
  good_writer().write(path);
  const Bytes old = slurp(path);

  // Files may not grow past 4 KiB for a moment: writing a 256 KiB model fails half-way (EFBIG).
  FileWriter big;
  const Bytes d = filler(256 << 10, 6);
  big.add("big", DType::u8, Layout::plain, {d.size()}, d.data(), d.size());
  rlimit saved{};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
  void (*saved_handler)(int) = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = saved;
  small.rlim_cur = 4096;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  const std::string message = mtlite_test::error_of([&] { big.write(path); });
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, saved_handler);

  CHECK(message == "model file: cannot write '" + path + "': File too large");
  CHECK(slurp(path) == old);
  CHECK(dir.entries() == std::vector<std::string>{"model.mtl"});
  big.write(path);  // and with the limit lifted it works
  CHECK(FileView::parse(slurp(path).data(), slurp(path).size()).find("big") != nullptr);
}

TEST_CASE("MappedFile and read_file: errors name the path; non-mappable files are read") {
  TempDir dir;
  const std::string missing = dir.path + "/absent.mtl";
  CHECK(mtlite_test::error_of([&] { MappedFile::open(missing); }) ==
        "cannot open model file '" + missing + "': No such file or directory");
  CHECK(mtlite_test::error_of([&] { read_file(missing); }) ==
        "cannot open model file '" + missing + "': No such file or directory");
  CHECK(mtlite_test::error_of([&] { MappedFile::open(dir.path); }) ==
        "cannot open model file '" + dir.path + "': Is a directory");

  // An empty file cannot be mapped: it is "read" (zero bytes) and then rejected by the reader.
  const std::string empty = dir.path + "/empty.mtl";
  std::ofstream(empty).close();
  MappedFile e = MappedFile::open(empty);
  CHECK(!e.mapped());
  CHECK(e.size() == 0);
  CHECK(mtlite_test::error_of([&] { FileView::parse(e.data(), e.size()); }) ==
        "model file: 0 bytes is too short for the 64-byte header: not a model file, or truncated");

  // A pipe cannot be mapped either; its bytes arrive through read().
  const std::string fifo = dir.path + "/pipe.mtl";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const Bytes& g = good_file();
  for (int use_read_file = 0; use_read_file < 2; ++use_read_file) {
    std::thread writer([&] {
      std::FILE* f = std::fopen(fifo.c_str(), "wb");
      if (f) {
        std::fwrite(g.data(), 1, g.size(), f);
        std::fclose(f);
      }
    });
    Bytes got;
    if (use_read_file) {
      const FileBuffer b = read_file(fifo);
      got.assign(b.data(), b.data() + b.size());
    } else {
      const MappedFile m = MappedFile::open(fifo);
      CHECK(!m.mapped());
      CHECK(reinterpret_cast<std::uintptr_t>(m.data()) % 64 == 0);
      got.assign(m.data(), m.data() + m.size());
    }
    writer.join();
    CHECK(got == g);
  }
}

// --- bad files -------------------------------------------------------------------------------------

TEST_CASE("bad files: the header") {
  const Bytes& g = good_file();
  const std::uint64_t size = g.size();
  REQUIRE(error_of(g) == "(parsed)");

  {
    Bytes b = g;
    b[1] = std::byte{'X'};
    CHECK(error_of(b) == "model file: not an mtlite model file (bad magic)");
    Bytes text(100, std::byte{'{'});
    CHECK(error_of(text) == "model file: not an mtlite model file (bad magic)");
    // Text-mode mangling (\r\n -> \n) is caught by the magic too.
    Bytes mangled = g;
    mangled.erase(mangled.begin() + 4);
    CHECK(error_of(mangled) == "model file: not an mtlite model file (bad magic)");
  }
  CHECK(with_header<std::uint16_t>(kMajorAt, 2) ==
        "model file: written by a newer mtlite: format 2.0, this reader knows 1.x");
  {
    Bytes b = g;
    put<std::uint16_t>(b, kMajorAt, 7);
    put<std::uint16_t>(b, kMinorAt, 3);
    CHECK(error_of(b) == "model file: written by a newer mtlite: format 7.3, this reader knows 1.x");
  }
  CHECK(with_header<std::uint16_t>(kMajorAt, 0) ==
        "model file: format 0.0 was never released, this reader knows 1.x");
  CHECK(with_header<std::uint16_t>(kMinorAt, 9) == "(parsed)");  // newer minor: still readable
  CHECK(with_header<std::uint32_t>(kHeaderBytesAt, 128) == "model file: header_bytes is 128, expected 64");
  CHECK(with_header<std::uint32_t>(kHeaderBytesAt, 0) == "model file: header_bytes is 0, expected 64");
  CHECK(with_header<std::uint32_t>(kFlagsAt, 1) == "model file: unknown flags 0x00000001 (this reader knows none)");
  CHECK(with_header<std::uint32_t>(kFlagsAt, 0x80000000u) ==
        "model file: unknown flags 0x80000000 (this reader knows none)");
  CHECK(with_header<std::uint64_t>(kFileBytesAt, size + 100) ==
        "model file: truncated: the header says " + std::to_string(size + 100) + " bytes, the file has " +
            std::to_string(size));
  CHECK(with_header<std::uint64_t>(kFileBytesAt, ~0ull) ==
        "model file: truncated: the header says 18446744073709551615 bytes, the file has " + std::to_string(size));
  {
    Bytes b = g;
    b.resize(b.size() + 10);
    CHECK(error_of(b) == "model file: trailing data: the header says " + std::to_string(size) +
                             " bytes, the file has " + std::to_string(size + 10));
  }
}

TEST_CASE("bad files: truncated at every byte offset") {
  const Bytes& g = good_file();
  for (std::size_t n = 0; n < g.size(); ++n) {
    CAPTURE(n);
    // A copy of exactly n bytes, so that ASan sees any read past the end.
    const Bytes b(g.begin(), g.begin() + static_cast<std::ptrdiff_t>(n));
    const std::string message = error_of(b);
    if (n < 64) {
      CHECK(message == "model file: " + std::to_string(n) +
                           " bytes is too short for the 64-byte header: not a model file, or truncated");
    } else {
      CHECK(message == "model file: truncated: the header says " + std::to_string(g.size()) +
                           " bytes, the file has " + std::to_string(n));
    }
    // Also when the damage hides the truncation: file_bytes made to agree, checksum re-sealed.
    if (n >= 64) {
      Bytes c = b;
      put<std::uint64_t>(c, kFileBytesAt, n);
      reseal(c);
      const std::string m2 = error_of(c);
      CHECK(m2.rfind("model file: ", 0) == 0);
      CHECK(m2 != "(parsed)");
    }
  }
}

TEST_CASE("bad files: checksum") {
  Bytes b = good_file();
  b[b.size() - 1] ^= std::byte{0x10};  // one bit of the last tensor's data
  CHECK(error_of(b) == "model file: checksum mismatch: the file is corrupt");
  ReadOptions trusting;
  trusting.verify_checksum = false;
  CHECK(error_of(b, trusting) == "(parsed)");
  const FileView v = FileView::parse(b.data(), b.size(), trusting);
  CHECK(v.tensors()[3].data[79] == (samples()[3].data[79] ^ std::byte{0x10}));

  Bytes c = good_file();
  c[kChecksumAt] ^= std::byte{1};  // the checksum itself
  CHECK(error_of(c) == "model file: checksum mismatch: the file is corrupt");
  Bytes m = good_file();
  m[get<std::uint64_t>(m, kMetaOffsetAt) + 3] ^= std::byte{0x20};  // metadata: "format" -> "foRmat"
  CHECK(error_of(m) == "model file: checksum mismatch: the file is corrupt");
}

TEST_CASE("bad files: metadata") {
  const Bytes& g = good_file();
  const std::uint64_t size = g.size();
  const std::uint64_t meta_at = get<std::uint64_t>(g, kMetaOffsetAt);
  const std::uint64_t meta_bytes = get<std::uint64_t>(g, kMetaBytesAt);

  CHECK(with_header<std::uint64_t>(kMetaOffsetAt, size) ==
        "model file: the metadata (offset " + std::to_string(size) + ", " + std::to_string(meta_bytes) +
            " bytes) ends at " + std::to_string(size + meta_bytes) + ", past the end of the file (" +
            std::to_string(size) + " bytes)");
  CHECK(with_header<std::uint64_t>(kMetaBytesAt, size) ==
        "model file: the metadata (offset 64, " + std::to_string(size) + " bytes) ends at " +
            std::to_string(size + 64) + ", past the end of the file (" + std::to_string(size) + " bytes)");
  CHECK(with_header<std::uint64_t>(kMetaOffsetAt, ~0ull - 10) ==
        "model file: the metadata (offset 18446744073709551605, " + std::to_string(meta_bytes) +
            " bytes) wraps around: offset + size overflows 64 bits");
  CHECK(with_header<std::uint64_t>(kMetaOffsetAt, 0) ==
        "model file: the metadata " + range(0, meta_bytes) + " overlaps the header [0, 64)");
  {
    // More than 16 MiB of metadata (inside the file, so only the limit is wrong).
    Bytes b = g;
    b.resize(b.size() + kMaxMetaBytes + 1, std::byte{' '});
    put<std::uint64_t>(b, kFileBytesAt, b.size());
    put<std::uint64_t>(b, kMetaOffsetAt, size);
    put<std::uint64_t>(b, kMetaBytesAt, kMaxMetaBytes + 1);
    ReadOptions o;
    o.verify_checksum = false;
    CHECK(error_of(b, o) == "model file: the metadata is 16777217 bytes, more than the limit of 16777216 (16 MiB)");
  }
  {
    Bytes b = g;
    b[meta_at] = std::byte{'x'};
    reseal(b);
    CHECK(error_of(b) == "model file: metadata: json: invalid literal 'x' at line 1, column 1");
  }
  {
    // Valid JSON, but an array (padded with spaces to the same length).
    Bytes b = g;
    const std::string text = "[1, 2]" + std::string(meta_bytes - 6, ' ');
    std::memcpy(b.data() + meta_at, text.data(), text.size());
    reseal(b);
    CHECK(error_of(b) == "model file: metadata: expected a JSON object, got an array");
  }
  CHECK(with_header<std::uint64_t>(kMetaBytesAt, 0).rfind("model file: metadata: json: ", 0) == 0);
  CHECK(with_header<std::uint64_t>(kMetaBytesAt, meta_bytes - 1).rfind("model file: metadata: json: ", 0) == 0);
}

TEST_CASE("bad files: the tensor table") {
  const Bytes& g = good_file();
  const std::uint64_t size = g.size();
  const std::uint64_t table_at = get<std::uint64_t>(g, kTableOffsetAt);

  CHECK(with_header<std::uint32_t>(kCountAt, 0xFFFFFFF0u) ==
        "model file: tensor_count is 4294967280, more than the limit of 65536");
  CHECK(with_header<std::uint32_t>(kCountAt, 65536) ==
        "model file: the tensor table (offset " + std::to_string(table_at) + ", 4194304 bytes) ends at " +
            std::to_string(table_at + 4194304) + ", past the end of the file (" + std::to_string(size) + " bytes)");
  CHECK(with_header<std::uint64_t>(kTableOffsetAt, ~0ull - 63) ==
        "model file: the tensor table (offset 18446744073709551552, 256 bytes) wraps around: offset + size "
        "overflows 64 bits");
  CHECK(with_header<std::uint64_t>(kTableOffsetAt, table_at + 4) ==
        "model file: the tensor table offset " + std::to_string(table_at + 4) + " is not a multiple of 8");
  CHECK(with_header<std::uint64_t>(kTableOffsetAt, 8) ==
        "model file: the tensor table [8, 264) overlaps the header [0, 64)");
  // Fewer entries than written: the names and data of the others are just unreferenced bytes.
  CHECK(with_header<std::uint32_t>(kCountAt, 2) == "(parsed)");
}

TEST_CASE("bad files: tensor names") {
  const Bytes& g = good_file();
  const std::uint64_t size = g.size();
  const std::uint64_t name0 = entry_field(g, 0, kNameOffset);

  CHECK(with_entry<std::uint64_t>(0, kNameOffset, size) ==
        "model file: tensor entry 0: the name (offset " + std::to_string(size) + ", 8 bytes) ends at " +
            std::to_string(size + 8) + ", past the end of the file (" + std::to_string(size) + " bytes)");
  CHECK(with_entry<std::uint64_t>(0, kNameOffset, ~0ull - 3) ==
        "model file: tensor entry 0: the name (offset 18446744073709551612, 8 bytes) wraps around: offset + size "
        "overflows 64 bits");
  CHECK(with_entry<std::uint64_t>(1, kNameOffset, 10) ==
        "model file: tensor entry 1: the name [10, 16) overlaps the header [0, 64)");
  CHECK(with_entry<std::uint32_t>(0, kNameBytes, 0) == "model file: tensor entry 0: empty name (name_bytes is 0)");
  CHECK(with_entry<std::uint32_t>(0, kNameBytes, 1025) ==
        "model file: tensor entry 0: name_bytes is 1025, more than the limit of 1024");
  CHECK(with_entry<std::uint32_t>(0, kNameBytes, 0xFFFFFFFFu) ==
        "model file: tensor entry 0: name_bytes is 4294967295, more than the limit of 1024");

  auto with_name_byte = [&](std::uint64_t at, unsigned char c) {
    Bytes b = g;
    b[at] = std::byte{c};
    reseal(b);
    return error_of(b);
  };
  CHECK(with_name_byte(name0 + 1, 0x01) ==
        "model file: tensor entry 0: name 'a\\x01weight' has a control character (U+0001 at byte 1)");
  CHECK(with_name_byte(name0, 0x7f) ==
        "model file: tensor entry 0: name '\\x7f.weight' has a control character (U+007F at byte 0)");
  CHECK(with_name_byte(name0 + 7, 0xff) ==
        "model file: tensor entry 0: name 'a.weigh\\xff' is not valid UTF-8 (at byte 7)");
  CHECK(with_name_byte(name0 + 7, 0xc3) ==  // a sequence cut short by the name's end
        "model file: tensor entry 0: name 'a.weigh\\xc3' is not valid UTF-8 (at byte 7)");
  {
    Bytes b = g;
    const std::uint64_t name3 = entry_field(g, 3, kNameOffset);  // "emb.\xc3\xbc"
    b[name3 + 4] = std::byte{0xc2};
    b[name3 + 5] = std::byte{0x85};  // U+0085, a C1 control
    reseal(b);
    CHECK(error_of(b) == "model file: tensor entry 3: name 'emb.\\xc2\\x85' has a control character (U+0085 at byte 4)");
    b[name3 + 4] = std::byte{0xc0};
    b[name3 + 5] = std::byte{0xae};  // overlong '.'
    reseal(b);
    CHECK(error_of(b) == "model file: tensor entry 3: name 'emb.\\xc0\\xae' is not valid UTF-8 (at byte 4)");
  }
  // b.weight -> a.weight: the same name twice.
  CHECK(with_name_byte(entry_field(g, 2, kNameOffset), 'a') ==
        "model file: tensor 'a.weight' (entry 2): duplicate name (entry 0 has it too)");
  // A name inside the metadata text: characters fine, but the regions overlap.
  {
    const std::uint64_t meta_at = get<std::uint64_t>(g, kMetaOffsetAt);
    Bytes b = g;
    put<std::uint64_t>(b, entry_at(b, 1) + kNameOffset, meta_at + 2);  // "format" of {"format":...
    put<std::uint32_t>(b, entry_at(b, 1) + kNameBytes, 6);
    reseal(b);
    CHECK(error_of(b) == "model file: the name of tensor 'format' " + range(meta_at + 2, 6) + " overlaps the metadata " +
                             range(meta_at, get<std::uint64_t>(g, kMetaBytesAt)));
  }
}

TEST_CASE("bad files: dtype, layout, rank, dims, sizes") {
  CHECK(with_entry<std::uint8_t>(0, kDType, 9) == "model file: tensor 'a.weight' (entry 0): unknown dtype code 9");
  CHECK(with_entry<std::uint8_t>(0, kDType, 0) == "model file: tensor 'a.weight' (entry 0): unknown dtype code 0");
  CHECK(with_entry<std::uint8_t>(1, kLayout, 5) == "model file: tensor 'a.bias' (entry 1): unknown layout code 5");
  CHECK(with_entry<std::uint8_t>(1, kLayout, 255) == "model file: tensor 'a.bias' (entry 1): unknown layout code 255");
  CHECK(with_entry<std::uint8_t>(1, kReserved, 1) == "model file: tensor 'a.bias' (entry 1): reserved byte is 1, expected 0");
  CHECK(with_entry<std::uint8_t>(0, kRank, 0) == "model file: tensor 'a.weight' (entry 0): rank 0, expected 1..4");
  CHECK(with_entry<std::uint8_t>(0, kRank, 5) == "model file: tensor 'a.weight' (entry 0): rank 5, expected 1..4");
  CHECK(with_entry<std::uint64_t>(0, kDims + 3 * 8, 7) ==
        "model file: tensor 'a.weight' (entry 0): dims[3] is 7 but the rank is 2 (unused dims must be 0)");
  CHECK(with_entry<std::uint64_t>(1, kDims + 1 * 8, 1) ==
        "model file: tensor 'a.bias' (entry 1): dims[1] is 1 but the rank is 1 (unused dims must be 0)");
  CHECK(with_entry<std::uint64_t>(0, kDims + 1 * 8, 0) == "model file: tensor 'a.weight' (entry 0): dims[1] is 0");
  CHECK(with_entry<std::uint64_t>(0, kDims, ~0ull) ==
        "model file: tensor 'a.weight' (entry 0): the size of f32 panels16 [18446744073709551615, 4] overflows (a dim "
        "above 2^40 or a total above 2^64 bytes)");
  {
    // Four dims of 2^20 (each allowed): f32 plain needs 2^82 bytes.
    Bytes b = good_file();
    const std::uint64_t e = entry_at(b, 0);
    put<std::uint8_t>(b, e + kLayout, 0);
    put<std::uint8_t>(b, e + kRank, 4);
    for (int d = 0; d < 4; ++d) put<std::uint64_t>(b, e + kDims + 8 * d, 1ull << 20);
    reseal(b);
    CHECK(error_of(b) ==
          "model file: tensor 'a.weight' (entry 0): the size of f32 plain [1048576, 1048576, 1048576, 1048576] "
          "overflows (a dim above 2^40 or a total above 2^64 bytes)");
  }
  // Combinations no layout allows: u4 plain, panels16 of rank 3 (the third dim 1).
  {
    Bytes b = good_file();
    put<std::uint8_t>(b, entry_at(b, 3) + kDType, 5);  // u4
    put<std::uint8_t>(b, entry_at(b, 3) + kLayout, 0);  // plain
    reseal(b);
    CHECK(error_of(b) ==
          "model file: tensor 'emb.\xc3\xbc' (entry 3): u4 plain [5, 3] is not a valid dtype/layout/shape combination");
    Bytes c = good_file();
    put<std::uint8_t>(c, entry_at(c, 0) + kRank, 3);
    put<std::uint64_t>(c, entry_at(c, 0) + kDims + 16, 1);
    reseal(c);
    CHECK(error_of(c) ==
          "model file: tensor 'a.weight' (entry 0): f32 panels16 [16, 4, 1] is not a valid dtype/layout/shape "
          "combination");
  }
  CHECK(with_entry<std::uint64_t>(0, kDataBytes, 320) ==
        "model file: tensor 'a.weight' (entry 0): 320 bytes, its dtype/layout/shape (f32 panels16 [16, 4]) need 256");
  // The shape changed instead: 17 outputs need two panels.
  CHECK(with_entry<std::uint64_t>(0, kDims, 17) ==
        "model file: tensor 'a.weight' (entry 0): 256 bytes, its dtype/layout/shape (f32 panels16 [17, 4]) need 512");
  CHECK(with_entry<std::uint8_t>(0, kDType, 2) ==
        "model file: tensor 'a.weight' (entry 0): 256 bytes, its dtype/layout/shape (f16 panels16 [16, 4]) need 128");
}

TEST_CASE("bad files: tensor data placement") {
  const Bytes& g = good_file();
  const std::uint64_t size = g.size();
  const std::uint64_t d0 = entry_field(g, 0, kDataOffset);
  const std::uint64_t table_at = get<std::uint64_t>(g, kTableOffsetAt);
  const std::uint64_t meta_bytes = get<std::uint64_t>(g, kMetaBytesAt);

  CHECK(with_entry<std::uint64_t>(0, kDataOffset, d0 + 8) ==
        "model file: tensor 'a.weight' (entry 0): data offset " + std::to_string(d0 + 8) + " is not a multiple of 64");
  CHECK(with_entry<std::uint64_t>(0, kDataOffset, ~0ull - 63) ==
        "model file: tensor 'a.weight' (entry 0): the data (offset 18446744073709551552, 256 bytes) wraps around: "
        "offset + size overflows 64 bits");
  const std::uint64_t past = (size + 63) / 64 * 64;
  CHECK(with_entry<std::uint64_t>(0, kDataOffset, past) ==
        "model file: tensor 'a.weight' (entry 0): the data (offset " + std::to_string(past) + ", 256 bytes) ends at " +
            std::to_string(past + 256) + ", past the end of the file (" + std::to_string(size) + " bytes)");
  // The last 64 bytes of a.weight's data fall off the end.
  const std::uint64_t tail = (size - 192) / 64 * 64;
  CHECK(with_entry<std::uint64_t>(0, kDataOffset, tail) ==
        "model file: tensor 'a.weight' (entry 0): the data (offset " + std::to_string(tail) + ", 256 bytes) ends at " +
            std::to_string(tail + 256) + ", past the end of the file (" + std::to_string(size) + " bytes)");
  // Overlaps: with the data of another tensor, the table, the metadata, the header.
  CHECK(with_entry<std::uint64_t>(1, kDataOffset, d0) ==
        "model file: the data of tensor 'a.weight' " + range(d0, 256) + " overlaps the data of tensor 'a.bias' " +
            range(d0, 64));
  CHECK(with_entry<std::uint64_t>(1, kDataOffset, d0 + 128) ==
        "model file: the data of tensor 'a.bias' " + range(d0 + 128, 64) + " overlaps the data of tensor 'a.weight' " +
            range(d0, 256));
  const std::uint64_t in_table = (table_at + 63) / 64 * 64;
  REQUIRE(in_table + 64 <= table_at + 4 * 64);
  CHECK(with_entry<std::uint64_t>(1, kDataOffset, in_table) ==
        "model file: the data of tensor 'a.bias' " + range(in_table, 64) + " overlaps the tensor table " +
            range(table_at, 256));
  REQUIRE(meta_bytes > 64);
  CHECK(with_entry<std::uint64_t>(0, kDataOffset, 64) ==
        "model file: the data of tensor 'a.weight' " + range(64, 256) + " overlaps the metadata " + range(64, meta_bytes));
  CHECK(with_entry<std::uint64_t>(0, kDataOffset, 0) ==
        "model file: tensor 'a.weight' (entry 0): the data [0, 256) overlaps the header [0, 64)");
}

TEST_CASE("bad files: random damage never crashes (single-byte mutations, truncations)") {
  const Bytes& g = good_file();
  ReadOptions o;
  o.verify_checksum = false;
  std::mt19937_64 rng(20240611);
  int parsed = 0, rejected = 0;
  auto run = [&](const Bytes& b) {
    try {
      const FileView v = FileView::parse(b.data(), b.size(), o);
      for (const TensorView& t : v.tensors()) {  // what parse accepted must be readable
        volatile std::byte sink = t.data[t.bytes - 1];
        (void)sink;
      }
      ++parsed;
    } catch (const mtlite::Error& e) {
      CHECK(std::string(e.what()).rfind("model file: ", 0) == 0);
      ++rejected;
    }
  };
  for (int i = 0; i < 2000; ++i) {
    Bytes b = g;
    // Half the mutations go to the header and table, where they matter most.
    const std::uint64_t limit = i % 2 ? b.size() : entry_field(b, 3, kNameOffset);
    b[rng() % limit] = static_cast<std::byte>(rng() & 0xff);
    run(b);
  }
  for (int i = 0; i < 2000; ++i) {
    Bytes b(g.begin(), g.begin() + static_cast<std::ptrdiff_t>(rng() % g.size()));
    if (i % 2 && b.size() >= 64) put<std::uint64_t>(b, kFileBytesAt, b.size());  // hide the truncation
    run(b);
  }
  MESSAGE("random damage: " << parsed << " parsed, " << rejected << " rejected");
  CHECK(rejected > 2000);
}

// ================================================================================================
// Model files: Model::load maps a .mtl file, validates it and runs it in place (model.hpp,
// compile/binder.hpp).

namespace {

// An MMoE with an embedding table, 40 dense features and layers of more than 2048 weights (the
// binder's finite check works in blocks of 2048 values).
mtlite::Spec model_spec() {
  mtlite::Spec s = mtlite::benchmark_spec();  // MMoE, 3 tasks, towers [64]; made smaller
  s.features.resize(40);
  s.features.insert(s.features.begin(), mtlite::Feature::categorical("item", 30, 8));
  s.num_experts = 3;
  s.expert = mtlite::mlp({64, 32});
  return s;
}

// The spec's model as `mtlite convert --dtype <dense>` writes it, and the in-memory model of the
// same tensors.
struct ModelFile {
  TempDir dir;
  std::string path;
  mtlite::Converted converted;
  ModelFile(mtlite::kernels::WeightType dense, mtlite::DType embeddings = mtlite::DType::f32) {
    const mtlite::Spec spec = model_spec();
    mtlite::ConvertOptions options;
    options.dense = dense;
    options.embeddings = embeddings;
    converted = mtlite::convert(spec, mtlite::random_weights(spec, 5, 0.2f), options);
    path = dir.path + "/model.mtl";
    mtlite::model_writer(converted.spec, converted.tensors).write(path);
  }
  mtlite::Model in_memory() const { return converted.model(); }
};

std::vector<std::vector<float>> scores_of(const mtlite::Model& m, std::size_t rows) {
  const mtlite::RandomInputs in(m.spec(), rows, 11);
  mtlite::Session session(m, rows);
  REQUIRE(session.predict(in.batch()).ok());
  std::vector<std::vector<float>> out;
  for (std::size_t o = 0; o < m.num_outputs(); ++o)
    out.emplace_back(session.scores(o).begin(), session.scores(o).end());
  return out;
}

// The bytes Model::load copies for a file whose layers all run in place: the i8 column sums,
// one int32 per padded output, each layer's block rounded up to 64 bytes.
std::size_t colsum_bytes(const mtlite::Model& m) {
  std::size_t n = 0;
  for (const mtlite::internal::PackedLayer& L : m.plan().layers)
    if (L.type == mtlite::kernels::WeightType::i8) n += (mtlite::kernels::round_to_panel(L.n) * 4 + 63) / 64 * 64;
  return n;
}

std::string load_error(const std::string& path, const mtlite::LoadOptions& o = {}) {
  try {
    (void)mtlite::Model::load(path, o);
  } catch (const mtlite::Error& e) {
    return e.what();
  }
  return "(loaded)";
}

}  // namespace

TEST_CASE("model files: the default load maps the file and copies no weights") {
  const mtlite::LoadOptions defaults;
  CHECK(defaults.map);
  CHECK_FALSE(defaults.verify_checksum);
  CHECK_FALSE(defaults.selftest);
  for (const auto dense : {mtlite::kernels::WeightType::f32, mtlite::kernels::WeightType::f16,
                           mtlite::kernels::WeightType::i8}) {
    for (const auto emb : {mtlite::DType::f32, mtlite::DType::u4}) {
      const ModelFile f(dense, emb);
      CAPTURE(static_cast<int>(dense));
      CAPTURE(static_cast<int>(emb));
      const mtlite::Model mapped = mtlite::Model::load(f.path);
      for (const mtlite::internal::PackedLayer& L : mapped.plan().layers) CHECK(L.in_place);
      const std::size_t sums = colsum_bytes(mapped);
      CHECK(mapped.copied_bytes() == sums);
      CHECK((sums > 0) == (dense == mtlite::kernels::WeightType::i8));
      // The weights and the table point outside the arena: into the file.
      const std::byte* arena = mapped.plan().arena.data();
      const std::byte* arena_end = arena + mapped.plan().arena.size();
      auto outside = [&](const void* p) {
        const auto* b = static_cast<const std::byte*>(p);
        return b < arena || b >= arena_end;
      };
      for (const mtlite::internal::PackedLayer& L : mapped.plan().layers)
        CHECK((outside(L.panels) && outside(L.bias) && (!L.scale || outside(L.scale))));
      CHECK(outside(mapped.plan().tables[0].data));
      // Mapped, read and in-memory models score the same bits.
      mtlite::LoadOptions read;
      read.map = false;
      const auto want = scores_of(f.in_memory(), 5);
      CHECK(scores_of(mapped, 5) == want);
      CHECK(scores_of(mtlite::Model::load(f.path, read), 5) == want);
    }
  }
}

TEST_CASE("model files: the checksum is checked on request, at load or later") {
  const ModelFile f(mtlite::kernels::WeightType::f32);
  CHECK(mtlite::Model::load(f.path).verify_checksum());
  CHECK_FALSE(f.in_memory().verify_checksum());  // built in code: no file to check

  // One weight's lowest mantissa bit flipped: a valid file with a wrong checksum.
  Bytes b = slurp(f.path);
  const FileView view = FileView::parse(b.data(), b.size());
  const TensorView* w = view.find("expert1.0.weight");
  REQUIRE(w != nullptr);
  b[static_cast<std::size_t>(w->data - b.data()) + 400] ^= std::byte{1};
  const std::string damaged = f.dir.path + "/damaged.mtl";
  { std::ofstream(damaged, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size())); }

  const mtlite::Model m = mtlite::Model::load(damaged);  // the default does not hash the file
  CHECK_THROWS_WITH_AS(m.verify_checksum(), "model file: checksum mismatch: the file is corrupt", mtlite::Error);
  mtlite::LoadOptions strict;
  strict.verify_checksum = true;
  CHECK(load_error(damaged, strict) == "model file: checksum mismatch: the file is corrupt");
  strict.map = false;
  CHECK(load_error(damaged, strict).find("checksum mismatch") != std::string::npos);
  // from_memory: aligned images run in place, the checksum is the image's.
  mtlite::AlignedBuffer<std::byte> image(b.size());
  std::memcpy(image.data(), b.data(), b.size());
  const mtlite::Model from_image = mtlite::Model::from_memory(image.data(), image.size());
  CHECK(from_image.copied_bytes() == 0);
  CHECK_THROWS_AS(from_image.verify_checksum(), mtlite::Error);
}

TEST_CASE("model files: a non-finite weight is refused at load, named by tensor and element") {
  for (const bool half : {false, true}) {
    const ModelFile f(half ? mtlite::kernels::WeightType::f16 : mtlite::kernels::WeightType::f32);
    const Bytes good = slurp(f.path);
    const FileView view = FileView::parse(good.data(), good.size());
    const TensorView* w = view.find("expert2.0.weight");  // 64 x 48: panels of 4 x 48 x 16 values
    REQUIRE(w != nullptr);
    const std::size_t size = half ? 2 : 4, n = static_cast<std::size_t>(w->bytes) / size;
    REQUIRE(n > 2048);
    for (const std::size_t at : {std::size_t{0}, std::size_t{2047}, std::size_t{2048}, n - 1}) {
      for (const bool nan : {false, true}) {
        CAPTURE(half);
        CAPTURE(at);
        CAPTURE(nan);
        Bytes b = good;
        const std::size_t off = static_cast<std::size_t>(w->data - good.data()) + at * size;
        if (half)
          put<std::uint16_t>(b, off, nan ? 0x7e01 : 0xfc00);  // NaN, -Inf
        else
          put<std::uint32_t>(b, off, nan ? 0x7fc00001u : 0x7f800000u);  // NaN, +Inf
        reseal(b);
        const std::string bad = f.dir.path + "/bad.mtl";
        { std::ofstream(bad, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size())); }
        CHECK(load_error(bad) == "model file (" + bad + "): tensor 'expert2.0.weight': non-finite value at element " +
                                     std::to_string(at));
      }
    }
  }
}


// A writer killed mid-write (SIGKILL) leaves its "<target>.tmp-<pid>-<n>" behind; the next write
// of that target removes it, and only it: a live process's temporary (a concurrent writer), other
// targets' temporaries and names that only look alike stay.
TEST_CASE("write: stale temporaries of dead writers of the same target are removed") {
  TempDir dir;
  const std::string path = dir.path + "/model.mtl";
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);  // reaped: kill(child, 0) now fails with ESRCH
  REQUIRE(::kill(child, 0) == -1);
  const std::string dead = std::to_string(child), live = std::to_string(::getppid());
  const std::vector<std::string> stale = {"model.mtl.tmp-" + dead + "-0", "model.mtl.tmp-" + dead + "-17",
                                          "model.mtl.tmp-" + dead};
  const std::vector<std::string> kept = {"model.mtl.tmp-" + live + "-0",  // a live writer's
                                         "other.mtl.tmp-" + dead + "-0",  // another target's
                                         "model.mtl.tmp-" + dead + "-0x", "model.mtl.tmp-" + dead + "-",
                                         "model.mtl.tmp--" + dead, "model.mtl.tmp-0-0", "xmodel.mtl.tmp-" + dead};
  for (const auto& names : {stale, kept})
    for (const std::string& name : names) std::ofstream(dir.path + "/" + name) << std::string(1000, 'x');
  good_writer().write(path);
  std::vector<std::string> want = kept;
  want.push_back("model.mtl");
  std::sort(want.begin(), want.end());
  const auto joined = [](const std::vector<std::string>& v) {  // so a failure shows the names
    std::string out;
    for (const std::string& s : v) out += s + " ";
    return out;
  };
  CHECK(joined(dir.entries()) == joined(want));
  CHECK(FileView::parse(slurp(path).data(), slurp(path).size()).tensors().size() == 4);
}

TEST_SUITE_END();

// --- resource limits of the read paths (mapped_file.hpp's contract) ------------------------------

namespace {

// Feeds a FIFO from a thread: `head`, then zero bytes until `total` bytes are written (endless
// when total is 0) or the reader goes away. It waits at most 20 s for a reader, so a test whose
// reader failed before opening the FIFO does not hang in join().
class FifoFeeder {
 public:
  FifoFeeder(std::string path, Bytes head, std::uint64_t total)
      : thread_([path = std::move(path), head = std::move(head), total] {
          int fd = -1;
          for (int i = 0; i < 20000 && fd < 0; ++i) {
            fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
            if (fd < 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
          }
          if (fd < 0) return;
          ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
          static const std::byte zeros[1 << 16] = {};
          std::uint64_t done = 0;
          auto put = [&](const std::byte* p, std::size_t n) {
            const ssize_t w = ::write(fd, p, n);  // EPIPE once the reader is gone (SIGPIPE ignored)
            if (w > 0) done += static_cast<std::uint64_t>(w);
            return w > 0;
          };
          bool ok = head.empty() || put(head.data(), head.size());
          while (ok && (total == 0 || done < total))
            ok = put(zeros, total == 0 ? sizeof zeros : static_cast<std::size_t>(std::min<std::uint64_t>(sizeof zeros, total - done)));
          ::close(fd);
        }) {}
  ~FifoFeeder() { thread_.join(); }

 private:
  std::thread thread_;
};

// A 64-byte header with the magic and `file_bytes`, nothing else filled in.
Bytes header_claiming(std::uint64_t file_bytes) {
  Bytes h(64, std::byte{0});
  std::memcpy(h.data(), kMagic, 8);
  for (int i = 0; i < 8; ++i) h[16 + i] = static_cast<std::byte>(file_bytes >> (8 * i));
  return h;
}

struct IgnoreSigpipe {
  IgnoreSigpipe() { std::signal(SIGPIPE, SIG_IGN); }
};

}  // namespace

TEST_CASE("read paths: a device without a model header is refused after 64 bytes (/dev/zero, an endless FIFO)") {
  const IgnoreSigpipe ignore;
  for (int use_map = 0; use_map < 2; ++use_map) {
    CAPTURE(use_map);
    const auto run = mtlite_test::run_in_child([&] {
      if (use_map) (void)MappedFile::open("/dev/zero");
      else (void)read_file("/dev/zero");
    }, 10);
    REQUIRE(run.exited);
    CHECK(run.error == "cannot read model file '/dev/zero': not an mtlite model file (bad magic)");
    CHECK(run.peak_kib < mtlite_test::rss_slack_kib(0));
    CHECK(run.seconds < 1.0);
  }
  TempDir dir;
  const std::string fifo = dir.path + "/zeros.mtl";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const FifoFeeder feed(fifo, {}, 0);
  const auto run = mtlite_test::run_in_child([&] { (void)read_file(fifo); }, 10);
  REQUIRE(run.exited);
  CHECK(run.error == "cannot read model file '" + fifo + "': not an mtlite model file (bad magic)");
  CHECK(run.peak_kib < mtlite_test::rss_slack_kib(0));
}

TEST_CASE("read paths: a stream's header that claims too much is refused before allocating, one that lies costs what arrives") {
  const IgnoreSigpipe ignore;
  TempDir dir;
  const std::string fifo = dir.path + "/lies.mtl";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  {  // 2^62 bytes, then endless zeros: refused at once
    const FifoFeeder feed(fifo, header_claiming(std::uint64_t{1} << 62), 0);
    const auto run = mtlite_test::run_in_child([&] { (void)MappedFile::open(fifo); }, 10);
    REQUIRE(run.exited);
    CHECK(run.error == "cannot read model file '" + fifo + "': the header says 4611686018427387904 bytes, more than a "
                       "pipe or device may hold (" + std::to_string(detail::stream_limit()) +
                       ", the physical memory); read it from a regular file instead, which is mapped");
    CHECK(run.peak_kib < mtlite_test::rss_slack_kib(0));
    CHECK(run.seconds < 1.0);
  }
  {  // 256 MiB claimed, 1 MiB delivered: an error, and only ~1 MiB spent
    const FifoFeeder feed(fifo, header_claiming(256 << 20), 1 << 20);
    const auto run = mtlite_test::run_in_child([&] { (void)read_file(fifo); }, 10);
    REQUIRE(run.exited);
    CHECK(run.error == "cannot read model file '" + fifo + "': truncated: the header says 268435456 bytes, the stream "
                       "ended after 1048576");
    MESSAGE("a 256 MiB claim with 1 MiB delivered: peak RSS +" << run.peak_kib << " KiB");
    CHECK(run.peak_kib < 3 * 1024 + 128 + mtlite_test::rss_slack_kib(3 * 1024 + 128));  // 3n + 128 KiB
  }
  {  // less than its own header
    const FifoFeeder feed(fifo, header_claiming(10), 0);
    const auto run = mtlite_test::run_in_child([&] { (void)read_file(fifo); }, 10);
    REQUIRE(run.exited);
    CHECK(run.error == "cannot read model file '" + fifo + "': the header says 10 bytes, less than the 64-byte header");
  }
}

TEST_CASE("read paths: the memory contract (regular file n bytes, stream at most 3n + 128 KiB), and reading stops at file_bytes") {
  const IgnoreSigpipe ignore;
  TempDir dir;
  constexpr std::uint64_t n = 24 << 20;
  const std::string fifo = dir.path + "/model.mtl";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  {  // the stream runs on past file_bytes: the read stops there
    const FifoFeeder feed(fifo, header_claiming(n), 0);
    const auto run = mtlite_test::run_in_child([&] {
      const FileBuffer b = read_file(fifo);
      if (b.size() != n || std::memcmp(b.data(), kMagic, 8) != 0) throw std::runtime_error("wrong bytes");
    }, 10);
    REQUIRE(run.exited);
    CHECK(run.error == "");
    MESSAGE("a 24 MiB model through a FIFO: peak RSS +" << run.peak_kib << " KiB in " << run.seconds << " s");
    const long bound = static_cast<long>(3 * n / 1024 + 128);
    CHECK(run.peak_kib <= bound + mtlite_test::rss_slack_kib(bound));
    CHECK(run.seconds < 5.0);
  }
  const std::string file = dir.path + "/regular.mtl";
  {
    Bytes b = header_claiming(n);
    b.resize(n);
    std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  }
  const auto run = mtlite_test::run_in_child([&] {
    if (read_file(file).size() != n) throw std::runtime_error("wrong size");
  }, 10);
  REQUIRE(run.exited);
  CHECK(run.error == "");
  MESSAGE("a 24 MiB regular file: peak RSS +" << run.peak_kib << " KiB");
  CHECK(run.peak_kib <= static_cast<long>(n / 1024) + mtlite_test::rss_slack_kib(static_cast<long>(n / 1024)));
}
