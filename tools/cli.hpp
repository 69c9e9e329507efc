// Command-line plumbing shared by the subcommands: their options, declared once (Option, Command)
// and parsed by Args; numbers, sizes and layer lists as text.
#pragma once

#include <mtlite/core/error.hpp>
#include <mtlite/format/json.hpp>
#include <mtlite/spec.hpp>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/stat.h>
#include <algorithm>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace cli {

// One option of a subcommand, declared once: its parse, its --help entry and the checks of
// which options go together (train's --resume, synth's generators, bench's --reference) all
// read the declaration, so none of them can forget an option the others know.
struct Option {
  const char* name;            // without the "--"
  const char* value;           // its placeholder in --help ("N", "FILE"); nullptr: a flag, no value
  const char* help;            // what it does; --help wraps it
  std::string fallback = "";   // the value when not given, shown as "(default ...)"; "": none
  const char* mode = nullptr;  // the one mode of the command it belongs to; nullptr: every mode
};

// A subcommand: its usage text (synopsis and description, ending where the option list goes)
// and its options.
struct Command {
  const char* usage;
  std::vector<Option> options;

  const Option* find(const std::string& name) const {
    for (const Option& o : options)
      if (name == o.name) return &o;
    return nullptr;
  }

  // The usage text, then an entry() per option.
  std::string help() const {
    std::string out = usage;
    for (const Option& o : options) out += entry(o);
    return out;
  }

  // "  --name VALUE" and its explanation from column 22, wrapped at 100 columns, with its default
  // and mode: "(default 256; new runs only)", or after an explanation in sentences "Default 1."
  static std::string entry(const Option& o) {
    constexpr std::size_t kColumn = 22, kWidth = 100;
    std::string line = std::string("  --") + o.name + (o.value ? std::string(" ") + o.value : "");
    line.resize(std::max(line.size() + 1, kColumn), ' ');
    std::string text = o.help, notes = o.fallback.empty() ? "" : "default " + o.fallback;
    if (o.mode) notes += (notes.empty() ? "" : "; ") + std::string(o.mode) + " only";
    if (!notes.empty() && text.back() == '.') {
      notes[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(notes[0])));
      text += " " + notes + ".";
    } else if (!notes.empty()) {
      text += " (" + notes + ")";
    }
    std::string out;
    for (std::size_t at = 0; at < text.size();) {
      std::size_t end = std::min(text.size(), at + kWidth - line.size());
      if (const std::size_t space = text.rfind(' ', end); end < text.size() && space != std::string::npos && space > at)
        end = space;
      out += line + text.substr(at, end - at) + "\n";
      at = text.find_first_not_of(' ', end);
      line.assign(kColumn, ' ');
    }
    return out;
  }

  // help() on `to`; returns exit_code (0 after --help, 2 for a usage error).
  int print_help(std::FILE* to, int exit_code) const {
    std::fputs(help().c_str(), to);
    return exit_code;
  }
};

// "--name value", "--name=value" and bare "--flag", as the command declares them, and --help;
// everything else is positional. An undeclared option is an error.
struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;  // as given

  Args(int argc, char** argv, const Command& command) : command_(&command) {
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
      const Option* o = command.find(name);
      if (!o && name != "help") throw mtlite::Error("unknown option --" + name);
      if (!o || !o->value) {
        if (inline_value) throw mtlite::Error("option --" + name + " takes no value");
        options[name] = "";
      } else {
        if (!inline_value) {
          if (i + 1 >= argc) throw mtlite::Error("option --" + name + " needs a value");
          value = argv[++i];
        }
        options[name] = value;
      }
    }
  }

  // What ends the command before it starts: --help (the help on stdout, exit code 0), or
  // arguments that are not `usable` (the help on stderr, exit code 2).
  std::optional<int> help_or_usage(bool usable) const {
    if (has("help")) return command_->print_help(stdout, 0);
    if (!usable) return command_->print_help(stderr, 2);
    return std::nullopt;
  }

  // The first option given that belongs to another mode than `mode`, or nullptr.
  const Option* outside(const char* mode) const {
    for (const Option& o : command_->options)
      if (o.mode && std::strcmp(o.mode, mode) != 0 && options.count(o.name)) return &o;
    return nullptr;
  }

  bool has(const std::string& name) const {
    if (name != "help") declared(name);
    return options.count(name) != 0;
  }
  // The value given, else the declared default.
  std::string get(const std::string& name) const { return has(name) ? options.at(name) : declared(name).fallback; }
  std::string get(const std::string& name, const std::string& fallback) const {
    return has(name) ? options.at(name) : fallback;
  }

  // A whole number in [lo, hi]: the value given, else `fallback` or, without one, the declared default.
  long long integer(const std::string& name, long long fallback, long long lo, long long hi) const {
    if (!has(name)) return fallback;
    return parse_integer(get(name), "--" + name, lo, hi);
  }
  long long integer(const std::string& name, long long lo, long long hi) const {
    return parse_integer(defaulted(name), "--" + name, lo, hi);
  }

  // A finite number in [lo, hi]: the value given, else `fallback` or, without one, the declared default.
  double real(const std::string& name, double fallback, double lo, double hi) const {
    if (!has(name)) return fallback;
    return parse_real(get(name), "--" + name, lo, hi);
  }
  double real(const std::string& name, double lo, double hi) const {
    return parse_real(defaulted(name), "--" + name, lo, hi);
  }

  static double parse_real(const std::string& text, const std::string& what, double lo, double hi) {
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || errno != 0 || !std::isfinite(v) || v < lo || v > hi) {
      char range[64];
      std::snprintf(range, sizeof range, "[%g, %g]", lo, hi);
      throw mtlite::Error(what + ": '" + text + "' is not a number in " + range);
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

 private:
  const Command* command_;

  // Asking for an option the command does not declare is a bug in the command, not the user's.
  const Option& declared(const std::string& name) const {
    const Option* o = command_->find(name);
    if (!o) throw std::logic_error("option --" + name + " is not declared");
    return *o;
  }
  const std::string& defaulted(const std::string& name) const {
    if (!has(name) && declared(name).fallback.empty()) throw std::logic_error("option --" + name + " has no default");
    return has(name) ? options.at(name) : declared(name).fallback;
  }
};

// A default as --help shows it, in JSON's shortest spelling: 0.001, 256, adam.
inline std::string shown(const mtlite::Json& v) { return v.is_string() ? v.as_string() : v.dump(); }

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
