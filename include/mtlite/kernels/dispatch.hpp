// Kernels chosen at run time, for a program compiled once for every CPU of its architecture
// (MTLITE_DISPATCH: the programs of a -Dsimd=dispatch build). Header-only users do not get this
// file: their own compiler flags choose the kernels (kernels.hpp).
//
// Each level's table is compiled in a translation unit of its own with that level's flags
// (src/dispatch/level_table.cpp; meson.build lists the levels and flags); the program itself is
// compiled for the architecture's baseline and holds two tables of its own: its own target's
// (sse2 on x86-64, neon on AArch64) and the scalar references. The best level this CPU runs is
// chosen on first use, unless the environment variable MTLITE_KERNELS names another; use_level()
// changes it later (call it before predicting: a predict running meanwhile may use either).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <string>
#include <string_view>

#include "../core/error.hpp"
#include "cpu.hpp"
#include "table.hpp"

namespace mtlite::kernels {

// The levels compiled in their own units, best first (meson.build gives each its flags): the
// one list that the kernels' and the trainer's tables (offline/train/math.hpp) are declared from.
#if defined(__x86_64__)
#define MTLITE_FOR_EACH_COMPILED_LEVEL(X) X(avx512vnni) X(avx512) X(avxvnni) X(avx2)
#elif defined(__aarch64__)
#define MTLITE_FOR_EACH_COMPILED_LEVEL(X) X(neon_i8mm) X(neon_dot)
#else
#error "MTLITE_DISPATCH is for x86-64 and AArch64 builds"
#endif

#define MTLITE_DECLARE_LEVEL_TABLE(level) const KernelTable& level##_table() noexcept;
MTLITE_FOR_EACH_COMPILED_LEVEL(MTLITE_DECLARE_LEVEL_TABLE)
#undef MTLITE_DECLARE_LEVEL_TABLE

// Every level of this architecture, best first: the compiled ones, then the two in every program.
#define MTLITE_ONE_LEVEL(level) +1
inline constexpr std::size_t kLevels = 2 MTLITE_FOR_EACH_COMPILED_LEVEL(MTLITE_ONE_LEVEL);
#undef MTLITE_ONE_LEVEL
inline const std::array<const KernelTable*, kLevels>& all_levels() noexcept {
#define MTLITE_LEVEL_TABLE_ADDRESS(level) &level##_table(),
  static const std::array<const KernelTable*, kLevels> levels = {
      MTLITE_FOR_EACH_COMPILED_LEVEL(MTLITE_LEVEL_TABLE_ADDRESS) &kTargetTable, &kRefTable};
#undef MTLITE_LEVEL_TABLE_ADDRESS
  return levels;
}

namespace detail_dispatch {
// The names of the levels (all, or those this CPU runs), best first, separated by spaces.
inline std::string level_names(bool runnable_only) {
  std::string names;
  for (const KernelTable* t : all_levels())
    if (!runnable_only || cpu_runs(t->level)) names += (names.empty() ? "" : " ") + std::string(t->level);
  return names;
}
}  // namespace detail_dispatch

// The names of the levels this CPU runs, best first, separated by spaces.
inline std::string supported_levels() { return detail_dispatch::level_names(true); }

namespace detail_dispatch {

inline const KernelTable* find_level(std::string_view name) noexcept {
  for (const KernelTable* t : all_levels())
    if (name == t->level) return t;
  return nullptr;
}

// The table of `name` if this CPU runs it; an Error that says why not otherwise.
inline const KernelTable& checked_level(std::string_view name) {
  const KernelTable* t = find_level(name);
  if (t == nullptr)
    throw Error("unknown kernel level '" + std::string(name) + "' (levels: " + level_names(false) + ")");
  if (!cpu_runs(t->level))
    throw Error("kernel level '" + std::string(name) + "' is not supported by this CPU (it runs: " +
                supported_levels() + ")");
  return *t;
}

inline const KernelTable* best_level() noexcept {
  for (const KernelTable* t : all_levels())
    if (cpu_runs(t->level)) return t;
  return &kRefTable;
}

// The active table. First use: MTLITE_KERNELS if it names a level this CPU runs, else the best
// (level_from_environment() reports a bad MTLITE_KERNELS; the mtlite command fails on it).
inline std::atomic<const KernelTable*>& active() noexcept {
  static std::atomic<const KernelTable*> table{[] {
    const char* env = std::getenv("MTLITE_KERNELS");
    if (env != nullptr && *env != '\0') {
      const KernelTable* t = find_level(env);
      if (t != nullptr && cpu_runs(t->level)) return t;
    }
    return best_level();
  }()};
  return table;
}

// The entry Entry of the table that Table() returns, called like the function it stands for
// (and convertible to a pointer to such a function). The trainer's loops use it too.
template <auto Table, auto Entry>
struct Dispatched;
template <class T, const T& (*Table)() noexcept, class R, class... Args, R (*T::*Entry)(Args...) noexcept>
struct Dispatched<Table, Entry> {
  static R call(Args... args) noexcept { return (Table().*Entry)(args...); }
  R operator()(Args... args) const noexcept { return call(args...); }
  constexpr operator decltype(&call)() const noexcept { return &call; }
};

}  // namespace detail_dispatch

// The kernels in use.
inline const KernelTable& table() noexcept {
  return *detail_dispatch::active().load(std::memory_order_relaxed);
}

// Use the kernels of `level` from now on: an Error for an unknown level or one this CPU cannot
// run (the message lists the ones it can).
inline void use_level(std::string_view level) {
  detail_dispatch::active().store(&detail_dispatch::checked_level(level), std::memory_order_relaxed);
}

// Applies MTLITE_KERNELS if it is set: the Error of use_level() if it names no level this CPU
// runs. Programs call it at start-up so that a mistyped level is reported, not ignored.
inline void level_from_environment() {
  const char* env = std::getenv("MTLITE_KERNELS");
  if (env == nullptr || *env == '\0') return;
  try {
    use_level(env);
  } catch (const Error& e) {
    throw Error(std::string("MTLITE_KERNELS: ") + e.what());
  }
}

inline constexpr detail_dispatch::Dispatched<&table, &KernelTable::activation> activation{};
inline constexpr detail_dispatch::Dispatched<&table, &KernelTable::dense> dense{};
inline constexpr detail_dispatch::Dispatched<&table, &KernelTable::mix> mix{};
inline constexpr detail_dispatch::Dispatched<&table, &KernelTable::add_rows> add_rows{};
inline constexpr detail_dispatch::Dispatched<&table, &KernelTable::softmax> softmax{};
inline constexpr detail_dispatch::Dispatched<&table, &KernelTable::dense_f16> dense_f16{};
inline constexpr detail_dispatch::Dispatched<&table, &KernelTable::dense_i8> dense_i8{};
inline constexpr detail_dispatch::Dispatched<&table, &KernelTable::quantize_activations> quantize_activations{};
inline constexpr detail_dispatch::Dispatched<&table, &KernelTable::add_rows_f16> add_rows_f16{};
inline constexpr detail_dispatch::Dispatched<&table, &KernelTable::add_rows_q8> add_rows_q8{};
inline constexpr detail_dispatch::Dispatched<&table, &KernelTable::add_rows_q4> add_rows_q4{};

}  // namespace mtlite::kernels
