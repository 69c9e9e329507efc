// The id hash (hash.hpp), Feature::row_of (spec.hpp) and Rng (random.hpp).
//
// hash_string, mix64 and hash_bucket are part of the model format: an id must land in the same
// bucket on every platform. The pinned values below were computed independently of this code
// (a few lines of Python over the definitions in hash.hpp: FNV-1a 64 with offset basis
// 0xcbf29ce484222325 and prime 0x100000001b3, then MurmurHash3's fmix64), so they are the
// cross-platform contract: if one changes, every hashed model changes with it.
#include <doctest/doctest.h>

#include <mtlite/core/hash.hpp>
#include <mtlite/core/random.hpp>
#include <mtlite/spec.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace {

using mtlite::hash_bucket;
using mtlite::hash_string;
using mtlite::mix64;

constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
constexpr std::uint64_t kAllOnes = ~std::uint64_t{0};

// Pearson's chi-square statistic of `ids` hashed into `buckets` buckets, and the extreme counts.
struct Spread {
  std::size_t out_of_range = 0;
  double chi2 = 0.0;
  std::uint64_t min = 0, max = 0;
};
Spread spread(const std::vector<std::uint64_t>& ids, std::uint64_t buckets) {
  std::vector<std::uint64_t> count(buckets, 0);
  Spread s;
  for (std::uint64_t id : ids) {
    const std::uint64_t b = hash_bucket(id, buckets);
    if (b < buckets)
      ++count[b];
    else
      ++s.out_of_range;
  }
  const double expected = static_cast<double>(ids.size()) / static_cast<double>(buckets);
  s.min = s.max = count[0];
  for (std::uint64_t c : count) {
    s.chi2 += (static_cast<double>(c) - expected) * (static_cast<double>(c) - expected) / expected;
    s.min = c < s.min ? c : s.min;
    s.max = c > s.max ? c : s.max;
  }
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// hash_string: FNV-1a 64

TEST_CASE("hash_string: FNV-1a 64 pinned values") {
  // The published FNV-1a 64 test vectors ("", "a", "foobar")...
  CHECK(hash_string("") == 0xcbf29ce484222325ull);
  CHECK(hash_string("a") == 0xaf63dc4c8601ec8cull);
  CHECK(hash_string("foobar") == 0x85944171f73967e8ull);
  // ...and values computed in Python.
  CHECK(hash_string("hello") == 0xa430d84680aabd0bull);
  CHECK(hash_string("user_id=42") == 0x8e9d89443c58a223ull);
  CHECK(hash_string(std::string("user_id=42")) == 0x8e9d89443c58a223ull);
}

TEST_CASE("hash_string: bytes >= 0x80 hash as unsigned, embedded NULs count") {
  // With a signed char, 0xff would be sign-extended to 0xffff...ff before the xor.
  CHECK(hash_string("\xff\x80\xc3\xa9") == 0xbef50967068236e6ull);
  CHECK(hash_string("h\xc3\xa9llo") == 0xa35ff71f960240e0ull);  // "héllo" in UTF-8
  CHECK(hash_string(std::string_view("a\0b", 3)) == 0xe5d29919042666b2ull);
  CHECK(hash_string(std::string_view("a\0b", 3)) != hash_string("a"));
  CHECK(hash_string(std::string_view("a\0", 2)) != hash_string("a"));
  CHECK(hash_string("ab") != hash_string("ba"));
}

TEST_CASE("hash_string and mix64 are usable at compile time") {
  constexpr std::uint64_t h = hash_string("a");
  constexpr std::uint64_t m = mix64(1);
  constexpr std::uint64_t b = hash_bucket(42, 1000);
  CHECK(h == 0xaf63dc4c8601ec8cull);
  CHECK(m == 0xb456bcfc34c2cb2cull);
  CHECK(b == 340);
}

// ---------------------------------------------------------------------------------------------
// mix64: MurmurHash3 fmix64

TEST_CASE("mix64: pinned values") {
  CHECK(mix64(0) == 0);  // fmix64 fixes zero
  CHECK(mix64(1) == 0xb456bcfc34c2cb2cull);
  CHECK(mix64(2) == 0x3abf2a20650683e7ull);
  CHECK(mix64(42) == 0x810879608e4259ccull);
  CHECK(mix64(kAllOnes) == 0x64b5720b4b825f21ull);
  CHECK(mix64(static_cast<std::uint64_t>(std::int64_t{-12345})) == 0x8d43c749aa583952ull);
  CHECK(mix64(std::uint64_t{1} << 63) == 0x8f780810af31a493ull);
  CHECK(mix64(0x0123456789abcdefull) == 0x87cbfbfe89022ceaull);
}

TEST_CASE("mix64: no collisions on 100k ids, flipping one input bit flips about half the output") {
  std::set<std::uint64_t> seen;
  for (std::uint64_t i = 0; i < 100000; ++i) seen.insert(mix64(i));
  CHECK(seen.size() == 100000);  // fmix64 is a bijection

  mtlite::Rng rng(99);
  double flipped = 0.0;
  int trials = 0;
  for (int t = 0; t < 500; ++t) {
    const std::uint64_t u = rng.next();
    for (int bit = 0; bit < 64; ++bit, ++trials) {
      std::uint64_t d = mix64(u) ^ mix64(u ^ (std::uint64_t{1} << bit));
      int n = 0;
      for (; d; d &= d - 1) ++n;
      flipped += n;
    }
  }
  const double mean = flipped / trials;  // 32 for an ideal mixer; sd of the mean ~0.02
  CHECK(mean > 31.5);
  CHECK(mean < 32.5);
}

// ---------------------------------------------------------------------------------------------
// hash_bucket

TEST_CASE("hash_bucket: pinned values, negative ids as two's complement") {
  CHECK(hash_bucket(0, 97) == 0);
  CHECK(hash_bucket(1, 97) == 30);
  CHECK(hash_bucket(42, 1000) == 340);
  CHECK(hash_bucket(kAllOnes, 97) == 10);
  CHECK(hash_bucket(static_cast<std::uint64_t>(std::int64_t{-1}), 1000) == 289);
  CHECK(hash_bucket(static_cast<std::uint64_t>(std::int64_t{-12345}), 1000003) == 408061);
  CHECK(hash_bucket(hash_string("user_id=42"), 1u << 20) == 879033);
  CHECK(hash_bucket(123456789, 1) == 0);
}

TEST_CASE("hash_bucket: always below the bucket count") {
  const std::uint64_t bucket_counts[] = {1, 2, 3, 7, 97, 1000, 1000003, std::uint64_t{1} << 32,
                                         (std::uint64_t{1} << 63) + 1, kAllOnes};
  std::vector<std::uint64_t> ids = {0, 1, kAllOnes, kAllOnes - 1, std::uint64_t{1} << 63,
                                    static_cast<std::uint64_t>(kMin), static_cast<std::uint64_t>(kMax)};
  mtlite::Rng rng(5);
  for (int i = 0; i < 2000; ++i) ids.push_back(rng.next());
  for (std::int64_t i = -1000; i < 1000; ++i) ids.push_back(static_cast<std::uint64_t>(i));
  for (std::uint64_t B : bucket_counts) {
    CAPTURE(B);
    std::uint64_t worst = 0;
    for (std::uint64_t id : ids) worst = std::max(worst, hash_bucket(id, B));
    CHECK(worst < B);
    if (B == 1) CHECK(worst == 0);
  }
}

TEST_CASE("hash_bucket: 100k ids spread evenly over 97 buckets") {
  // Chi-square with 96 degrees of freedom: mean 96, sd 13.9. The window [45, 172] is about
  // +-4.5 sd (Wilson-Hilferty). The lower end matters too: sequential ids with no mixing
  // (id % 97) would give a chi-square near 0, and multiples of 97 would all land in bucket 0.
  const std::size_t n = 100000;
  const std::uint64_t B = 97;
  std::vector<std::vector<std::uint64_t>> sets(5);
  for (std::size_t i = 0; i < n; ++i) {
    sets[0].push_back(i);                                                        // sequential
    sets[1].push_back(i * 97);                                                   // stride B
    sets[2].push_back(static_cast<std::uint64_t>(-1 - static_cast<std::int64_t>(i)));  // negative
    sets[3].push_back(hash_string("item_" + std::to_string(i)));                 // strings
    sets[4].push_back(static_cast<std::uint64_t>(i) << 32);                      // high bits only
  }
  const char* names[] = {"sequential", "stride 97", "negative", "strings", "high bits"};
  for (std::size_t s = 0; s < sets.size(); ++s) {
    CAPTURE(names[s]);
    const Spread sp = spread(sets[s], B);
    CAPTURE(sp.chi2);
    REQUIRE(sp.out_of_range == 0);
    CHECK(sp.chi2 > 45.0);
    CHECK(sp.chi2 < 172.0);
    // Every bucket within 15% of the expected 1031 (about 4.8 sd of a bucket count).
    CHECK(sp.min > 876);
    CHECK(sp.max < 1186);
  }
}

// ---------------------------------------------------------------------------------------------
// Feature::row_of

TEST_CASE("Feature::row_of: vocabulary ids map to themselves, the rest to the OOV row") {
  const mtlite::Feature cat = mtlite::Feature::categorical("c", 10, 4);
  const mtlite::Feature bag = mtlite::Feature::multi_hot("m", 10, 4);
  for (const mtlite::Feature* f : {&cat, &bag}) {
    CHECK(f->mapping == mtlite::IdMapping::vocabulary);
    CHECK(f->table_rows() == 11);
    for (std::int64_t id = 0; id < 10; ++id) CHECK(f->row_of(id) == static_cast<std::uint64_t>(id));
    for (std::int64_t id : {std::int64_t{-1}, std::int64_t{-10}, std::int64_t{-11}, kMin, kMin + 1,
                            std::int64_t{10}, std::int64_t{11}, std::int64_t{1} << 40, kMax})
      CHECK(f->row_of(id) == 10);
  }
  // One-word vocabulary.
  const mtlite::Feature one = mtlite::Feature::categorical("one", 1, 2);
  CHECK(one.row_of(0) == 0);
  CHECK(one.row_of(1) == 1);
  CHECK(one.row_of(-1) == 1);
  // A vocabulary larger than 2^32: the comparison must not truncate the id.
  const mtlite::Feature big = mtlite::Feature::categorical("big", (std::uint64_t{1} << 32) + 5, 2);
  const std::uint64_t two32 = std::uint64_t{1} << 32;
  CHECK(big.row_of(static_cast<std::int64_t>(two32)) == two32);
  CHECK(big.row_of(static_cast<std::int64_t>(two32 + 5)) == two32 + 5);
  CHECK(big.row_of(-1) == two32 + 5);
}

TEST_CASE("Feature::row_of: hashed ids land in [0, size), as hash_bucket says") {
  const mtlite::Feature h = mtlite::Feature::hashed("h", 97, 8);
  const mtlite::Feature hb =
      mtlite::Feature::multi_hot("hb", 1000, 8, mtlite::Pooling::mean, mtlite::IdMapping::hashing);
  CHECK(h.mapping == mtlite::IdMapping::hashing);
  CHECK(h.table_rows() == 98);
  // Pinned: the same contract as hash_bucket (two's complement for negative ids).
  CHECK(h.row_of(0) == 0);
  CHECK(h.row_of(1) == 30);
  CHECK(h.row_of(-1) == 10);
  CHECK(hb.row_of(42) == 340);
  CHECK(hb.row_of(-1) == 289);
  for (const mtlite::Feature* f : {&h, &hb}) {
    std::set<std::uint64_t> rows;
    int out_of_range = 0, not_hash_bucket = 0;
    for (std::int64_t id = -5000; id < 5000; ++id) {
      const std::uint64_t r = f->row_of(id);
      out_of_range += r >= f->size;
      not_hash_bucket += r != hash_bucket(static_cast<std::uint64_t>(id), f->size);
      rows.insert(r);
    }
    CHECK(out_of_range == 0);
    CHECK(not_hash_bucket == 0);
    for (std::int64_t id : {kMin, kMax, kMin + 1, kMax - 1}) CHECK(f->row_of(id) < f->size);
    CHECK(rows.size() == f->size);  // 10k ids reach every bucket
  }
  // Hashing, not a vocabulary: small ids do not map to themselves.
  int identity = 0;
  for (std::int64_t id = 0; id < 97; ++id) identity += h.row_of(id) == static_cast<std::uint64_t>(id);
  CHECK(identity < 10);
}

// ---------------------------------------------------------------------------------------------
// Rng: SplitMix64

TEST_CASE("Rng: pinned SplitMix64 stream") {
  // Seed 0 is the reference SplitMix64 sequence (Vigna's splitmix64.c); seed 7 from Python.
  mtlite::Rng a(0);
  CHECK(a.next() == 0xe220a8397b1dcdafull);
  CHECK(a.next() == 0x6e789e6aa1b965f4ull);
  CHECK(a.next() == 0x06c45d188009454full);
  mtlite::Rng b(7);
  CHECK(b.next() == 0x63cbe1e459320dd7ull);
  CHECK(b.next() == 0x044c3cd7f43c661cull);
  CHECK(b.next() == 0xe6984080bab12a02ull);
  // uniform() keeps the top 24 bits of next().
  mtlite::Rng c(7);
  CHECK(c.uniform() == 0.38982969522476196f);
  CHECK(c.uniform() == 0.016788244247436523f);
  CHECK(c.uniform() == 0.9007606506347656f);
}

TEST_CASE("Rng: the same seed gives the same stream, other seeds another") {
  for (std::uint64_t seed : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{42}, kAllOnes}) {
    CAPTURE(seed);
    mtlite::Rng a(seed), b(seed), other(seed + 1);
    int same = 0, differ = 0;
    for (int i = 0; i < 1000; ++i) {
      const std::uint64_t x = a.next();
      same += x == b.next();
      differ += x != other.next();
    }
    CHECK(same == 1000);
    CHECK(differ == 1000);
    // A copy continues the same stream; mixing draw kinds keeps them in step.
    mtlite::Rng c = a;
    CHECK(c.uniform() == a.uniform());
    CHECK(c.below(1000) == a.below(1000));
    CHECK(c.normal() == a.normal());
    CHECK(c.next() == a.next());
  }
}

TEST_CASE("Rng: uniform() is in [0, 1) and uniform over it") {
  mtlite::Rng rng(123), twin(123);
  const int n = 200000;
  float lo = 1.0f, hi = 0.0f;
  double sum = 0.0;
  int bins[10] = {};
  int outside = 0, not_top_bits = 0;
  for (int i = 0; i < n; ++i) {
    const float u = rng.uniform();
    outside += !(u >= 0.0f && u < 1.0f);
    not_top_bits += u != static_cast<float>(twin.next() >> 40) / 16777216.0f;
    if (!(u >= 0.0f && u < 1.0f)) continue;
    lo = std::min(lo, u);
    hi = std::max(hi, u);
    sum += u;
    ++bins[static_cast<int>(u * 10.0f)];
  }
  CHECK(outside == 0);
  CHECK(not_top_bits == 0);
  CHECK(lo < 1e-4f);
  CHECK(hi > 1.0f - 1e-4f);
  CHECK(std::fabs(sum / n - 0.5) < 0.005);  // sd of the mean: 0.00065
  for (int b : bins) CHECK(std::abs(b - n / 10) < 600);  // sd of a bin: 134
}

TEST_CASE("Rng: the largest uniform() is below 1") {
  // 0xeffe31229c552792 is the seed whose first draw is 0xffffff0123456789 (SplitMix64 inverted
  // in Python): the top 24 bits are all ones, the largest value uniform() can return.
  mtlite::Rng rng(0xeffe31229c552792ull);
  mtlite::Rng copy = rng;
  CHECK(copy.next() == 0xffffff0123456789ull);
  const float u = rng.uniform();
  CHECK(u == 1.0f - 1.0f / 16777216.0f);
  CHECK(u < 1.0f);
}

TEST_CASE("Rng: uniform(lo, hi), below(n), normal()") {
  mtlite::Rng rng(77);
  int outside = 0;
  for (int i = 0; i < 10000; ++i) {
    const float v = rng.uniform(-3.0f, 5.0f);
    outside += !(v >= -3.0f && v <= 5.0f);
  }
  CHECK(outside == 0);
  for (std::uint64_t n : {std::uint64_t{1}, std::uint64_t{2}, std::uint64_t{7}, std::uint64_t{1000}}) {
    std::uint64_t worst = 0;
    for (int i = 0; i < 5000; ++i) worst = std::max(worst, rng.below(n));
    CHECK(worst == n - 1);  // below n, and (with 5000 draws) reaches n - 1
  }
  CHECK(rng.below(0) == 0);
  double s = 0.0, s2 = 0.0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const double z = rng.normal();
    s += z;
    s2 += z * z;
  }
  const double mean = s / n, var = s2 / n - mean * mean;
  REQUIRE(std::isfinite(s2));
  CHECK(std::fabs(mean) < 0.02);       // sd 0.0032
  CHECK(std::fabs(var - 1.0) < 0.03);  // sd 0.0045
}
