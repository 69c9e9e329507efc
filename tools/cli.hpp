// Command-line plumbing shared by the subcommands: options, errors, output.
#pragma once

#include <mtlite/core/error.hpp>
#include <mtlite/spec.hpp>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/stat.h>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace cli {

// "--name value", "--name=value" and bare "--flag"; everything else is positional.
// `flags` names the options that take no value; anything not in `flags` or `valued` is an error.
struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;

  Args(int argc, char** argv, const std::set<std::string>& flags, const std::set<std::string>& valued) {
    for (int i = 0; i < argc; ++i) {
      std::string a = argv[i];
      if (a.size() < 3 || a.compare(0, 2, "--") != 0) {
        positional.push_back(a);
        continue;
      }
      std::string name = a.substr(2), value;
      const std::size_t eq = name.find('=');
      const bool inline_value = eq != std::string::npos;
      if (inline_value) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      }
      if (flags.count(name)) {
        if (inline_value) throw mtlite::Error("option --" + name + " takes no value");
        options[name] = "";
      } else if (valued.count(name)) {
        if (!inline_value) {
          if (i + 1 >= argc) throw mtlite::Error("option --" + name + " needs a value");
          value = argv[++i];
        }
        options[name] = value;
      } else {
        throw mtlite::Error("unknown option --" + name);
      }
    }
  }

  bool has(const std::string& name) const { return options.count(name) != 0; }
  std::string get(const std::string& name, const std::string& fallback = "") const {
    const auto it = options.find(name);
    return it == options.end() ? fallback : it->second;
  }
  // A whole number in [lo, hi].
  long long integer(const std::string& name, long long fallback, long long lo, long long hi) const {
    if (!has(name)) return fallback;
    return parse_integer(get(name), "--" + name, lo, hi);
  }

  // A finite number in [lo, hi].
  double real(const std::string& name, double fallback, double lo, double hi) const {
    if (!has(name)) return fallback;
    const std::string text = get(name);
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || errno != 0 || !std::isfinite(v) || v < lo || v > hi) {
      char range[64];
      std::snprintf(range, sizeof range, "[%g, %g]", lo, hi);
      throw mtlite::Error("--" + name + ": '" + text + "' is not a number in " + range);
    }
    return v;
  }

  static long long parse_integer(const std::string& text, const std::string& what, long long lo,
                                 long long hi) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno != 0 || v < lo || v > hi)
      throw mtlite::Error(what + ": '" + text + "' is not a whole number in [" + std::to_string(lo) +
                          ", " + std::to_string(hi) + "]");
    return v;
  }
};

// "1,16,256" -> {1, 16, 256}
inline std::vector<long long> integer_list(const std::string& text, const std::string& what,
                                           long long lo, long long hi) {
  std::vector<long long> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    out.push_back(Args::parse_integer(item, what, lo, hi));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

inline std::uint64_t file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw mtlite::Error("cannot stat '" + path + "': " + std::strerror(errno));
  return static_cast<std::uint64_t>(st.st_size);
}

// 1234567 -> "1.18 MiB"
inline std::string bytes_string(std::uint64_t n) {
  char buf[32];
  if (n < 1024) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  else if (n < (1u << 20)) std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(n) / 1024.0);
  else std::snprintf(buf, sizeof buf, "%.2f MiB", static_cast<double>(n) / 1048576.0);
  return buf;
}

// [256 relu, 128 relu] -> "256-128"; other activations are named: "64 tanh-1"
inline std::string mlp_string(const mtlite::Mlp& layers) {
  if (layers.empty()) return "(none)";
  std::string s;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    s += (i ? "-" : "") + std::to_string(layers[i].units);
    if (layers[i].activation != mtlite::Activation::relu) s += std::string(" ") + mtlite::to_string(layers[i].activation);
  }
  return s;
}

}  // namespace cli
