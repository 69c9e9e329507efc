// mtlite embed MODEL --out FILE [--name IDENT]: the model file's bytes as a C/C++ header, to
// compile a model into a program (Model::from_memory, mtlite_model_open_memory). Written
// atomically (cli::AtomicOutput).
#include <mtlite/mtlite.hpp>

#include <cstdio>
#include <string>

#include "cli.hpp"
#include "commands.hpp"
#include "output.hpp"

namespace {

const cli::Command kCommand{
    "usage: mtlite embed MODEL.mtl --out FILE [options]\n"
    "\n"
    "Writes FILE, a header for C99 and later and for C++11 and later, holding the bytes of MODEL:\n"
    "  static const unsigned char IDENT[];   aligned to 64 bytes, so that Model::from_memory and\n"
    "                                        mtlite_model_open_memory(..., MTLITE_OPEN_IN_PLACE, ...)\n"
    "                                        use them where they are, without a copy\n"
    "  static const size_t IDENT_size;       the file's size in bytes\n"
    "MODEL is opened first, its checksum verified and its self-test run: a file that does not load\n"
    "is refused and FILE is not written. FILE is written to a temporary name and renamed into place.\n"
    "\n",
    {
        {"out", "FILE", "the header to write"},
        {"name", "IDENT", "the array's name: a C identifier, not starting with '_', at most 58 characters, no "
                          "keyword (default: MODEL's file name with each character outside [A-Za-z0-9_] as '_', "
                          "e.g. model_mtl for model.mtl)"},
        {"json", nullptr, "print one JSON object instead of text"},
    }};

// C99 guarantees 63 significant characters in an identifier of internal linkage; IDENT_size
// must fit too.
constexpr std::size_t kMaxName = 63 - 5;

// What the name must not be: keywords of C (C99 to C23) and C++ (to C++20, alternative tokens
// included), and what the header or <stddef.h> defines.
bool reserved(const std::string& name) {
  static const char* const kWords[] = {
      "alignas", "alignof", "and", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break", "case", "catch",
      "char", "char8_t", "char16_t", "char32_t", "class", "compl", "concept", "const", "consteval", "constexpr",
      "constinit", "const_cast", "continue", "co_await", "co_return", "co_yield", "decltype", "default", "delete",
      "do", "double", "dynamic_cast", "else", "enum", "explicit", "export", "extern", "false", "float", "for",
      "friend", "goto", "if", "inline", "int", "long", "mutable", "namespace", "new", "noexcept", "not", "not_eq",
      "nullptr", "operator", "or", "or_eq", "private", "protected", "public", "register", "reinterpret_cast",
      "requires", "restrict", "return", "short", "signed", "sizeof", "static", "static_assert", "static_cast",
      "struct", "switch", "template", "this", "thread_local", "throw", "true", "try", "typedef", "typeid",
      "typename", "typeof", "typeof_unqual", "union", "unsigned", "using", "virtual", "void", "volatile",
      "wchar_t", "while", "xor", "xor_eq", "size_t", "ptrdiff_t", "max_align_t", "offsetof", "NULL"};
  for (const char* w : kWords)
    if (name == w) return true;
  return name.compare(0, 13, "MTLITE_EMBED_") == 0;
}

bool identifier_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

void check_name(const std::string& name) {
  std::string why;
  if (name.empty()) why = "is empty";
  else if (name[0] >= '0' && name[0] <= '9') why = "starts with a digit";
  else if (name[0] == '_') why = "starts with '_' (reserved for the implementation at file scope)";
  else if (name.size() > kMaxName) why = "is longer than " + std::to_string(kMaxName) + " characters";
  else if (reserved(name)) why = "is a keyword or a name the header needs";
  for (const char c : name)
    if (why.empty() && !identifier_char(c)) why = "holds characters outside [A-Za-z0-9_]";
  if (!why.empty()) throw mtlite::Error("--name '" + name + "' " + why + ": it must be a C identifier");
}

// "models/game-v2.mtl" -> "game_v2_mtl"; a leading digit gets "mtl_" in front.
std::string name_from_path(const std::string& path) {
  std::string name = path.substr(path.find_last_of('/') + 1);
  for (char& c : name)
    if (!identifier_char(c)) c = '_';
  if (name.empty() || (name[0] >= '0' && name[0] <= '9') || name[0] == '_') name = "mtl_" + name;
  if (name.size() > kMaxName) name.resize(kMaxName);
  if (reserved(name)) name += "_mtl";
  return name;
}

std::string upper(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return s;
}

// The declaration's start: alignas must come first in C++ and _Alignas after `static` in C
// (-Wold-style-declaration), so the whole prefix is chosen per language. Guarded: two embedded
// models in one translation unit define it once.
std::string header_prologue(const std::string& name, const std::string& model_file, std::size_t size) {
  const std::string align = std::to_string(mtlite::kAlign), guard = "MTLITE_EMBED_" + upper(name) + "_H";
  return "/* Generated by mtlite embed from " + model_file + " (" + std::to_string(size) +
         " bytes); do not edit.\n"
         " * The bytes of a .mtl model file, " + align + "-byte aligned so that they are used in place:\n"
         " *   C++: mtlite::Model model = mtlite::Model::from_memory(" + name + ", " + name + "_size);\n"
         " *   C:   mtlite_model_open_memory(" + name + ", " + name + "_size, MTLITE_OPEN_IN_PLACE, &model, error, sizeof error);\n"
         " */\n"
         "#ifndef " + guard + "\n"
         "#define " + guard + "\n"
         "\n"
         "#include <stddef.h>\n"
         "\n"
         "#ifndef MTLITE_EMBED_ALIGNED_BYTES\n"
         "#if defined(__cplusplus)\n"
         "#define MTLITE_EMBED_ALIGNED_BYTES alignas(" + align + ") static const unsigned char\n"
         "#elif defined(_MSC_VER)\n"
         "#define MTLITE_EMBED_ALIGNED_BYTES __declspec(align(" + align + ")) static const unsigned char\n"
         "#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L\n"
         "#define MTLITE_EMBED_ALIGNED_BYTES static _Alignas(" + align + ") const unsigned char\n"
         "#elif defined(__GNUC__)\n"
         "#define MTLITE_EMBED_ALIGNED_BYTES static __attribute__((aligned(" + align + "))) const unsigned char\n"
         "#else\n"
         "/* A C99 compiler without alignment attributes: from_memory copies the bytes once, and\n"
         " * MTLITE_OPEN_IN_PLACE refuses them unless they happen to be aligned. */\n"
         "#define MTLITE_EMBED_ALIGNED_BYTES static const unsigned char\n"
         "#endif\n"
         "#endif\n"
         "\n"
         "MTLITE_EMBED_ALIGNED_BYTES " + name + "[" + std::to_string(size) + "] = {\n";
}

void write_header(const std::string& out_path, const std::string& name, const std::string& model_file,
                  const std::byte* data, std::size_t size) {
  constexpr std::size_t kPerLine = 16;  // short lines: C99 promises 4095 characters per line
  static const char kHex[] = "0123456789abcdef";
  cli::AtomicOutput out(out_path);
  std::string text = header_prologue(name, model_file, size);
  for (std::size_t i = 0; i < size; ++i) {
    const auto b = static_cast<unsigned>(data[i]);
    text += i % kPerLine == 0 ? "  " : " ";
    text += {'0', 'x', kHex[b >> 4], kHex[b & 15], ','};
    if (i % kPerLine == kPerLine - 1 || i + 1 == size) text += '\n';
    if (text.size() >= (1u << 20)) {
      out.write(text);
      text.clear();
    }
  }
  text += "};\nstatic const size_t " + name + "_size = " + std::to_string(size) + ";\n\n#endif\n";
  out.write(text);
  out.commit();
}

}  // namespace

int cmd_embed(int argc, char** argv) {
  const cli::Args args(argc, argv, kCommand);
  if (const auto rc = args.help_or_usage(args.positional.size() == 1 && args.has("out"))) return *rc;
  const std::string path = args.positional[0], out_path = args.get("out");
  const std::string name = args.has("name") ? args.get("name") : name_from_path(path);
  check_name(name);
  // The very bytes the header will hold are opened, as the program will open them: from memory.
  const mtlite::format::MappedFile file = mtlite::format::MappedFile::open(path);
  mtlite::LoadOptions load;
  load.verify_checksum = true;  // a damaged file would be compiled into every build
  load.selftest = true;
  bool selftest = false;
  try {
    selftest = mtlite::Model::from_memory(file.data(), file.size(), load).has_selftest();
  } catch (const mtlite::Error& e) {
    throw mtlite::Error(path + ": " + e.what());
  }
  if (!selftest)
    std::fprintf(stderr, "warning: %s carries no self-test (a checkpoint?); mtlite convert writes one\n", path.c_str());
  write_header(out_path, name, path.substr(path.find_last_of('/') + 1), file.data(), file.size());
  if (args.has("json")) {
    std::printf("%s\n", mtlite::Json::object()
                            .set("model", path)
                            .set("out", out_path)
                            .set("name", name)
                            .set("bytes", file.size())
                            .set("alignment", mtlite::kAlign)
                            .set("selftest", selftest ? "passed" : "none")
                            .dump()
                            .c_str());
  } else {
    std::printf("wrote %s: %s[%zu] (%s), %zu-byte aligned; self-test %s\n", out_path.c_str(), name.c_str(),
                file.size(), cli::bytes_string(file.size()).c_str(), mtlite::kAlign, selftest ? "passed" : "none");
  }
  return 0;
}
