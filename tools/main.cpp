// mtlite: the command line. One subcommand per file; each prints text by default and one JSON
// object with --json; errors go to stderr with exit code 1 (2 for usage errors).
#include <mtlite/mtlite.hpp>

#include <cstdio>
#include <cstring>
#include <string>

#include "commands.hpp"

namespace {

struct Command {
  const char* name;
  int (*run)(int argc, char** argv);
  const char* summary;
};

const Command kCommands[] = {
    {"train", cmd_train, "train a multi-task model on CSV data; writes a float model file (a checkpoint)"},
    {"eval", cmd_eval, "a model's quality on labelled CSV rows: AUC, log loss, RMSE, gAUC, NDCG@k"},
    {"predict", cmd_predict, "score CSV rows with a model; writes one CSV line of scores per row"},
    {"convert", cmd_convert, "float weights -> a deployable model file: f32, f16 or int8, with a self-test"},
    {"encode", cmd_encode, "CSV rows as tensors, encoded as mtlite reads them, for training in PyTorch"},
    {"embed", cmd_embed, "a model file as a C/C++ header (64-byte aligned bytes) to compile into a program"},
    {"inspect", cmd_inspect, "what a model file holds: architecture, tasks, features, tensors, bytes"},
    {"bench", cmd_bench, "time a model: microseconds per batch and per example"},
    {"split", cmd_split, "CSV rows into train, validation and test files: seeded random, or each group's last rows"},
    {"synth", cmd_synth, "write synthetic multi-task data as CSV: mmoe, funnel"},
};

void usage(std::FILE* out) {
  std::fprintf(out, "mtlite %s: multi-task recommendation models, fast and small\n\n", MTLITE_VERSION_STRING);
  std::fprintf(out, "usage: mtlite <command> [options]   (mtlite <command> --help for its options)\n\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::printf("mtlite %s\n", MTLITE_VERSION_STRING);
    return 0;
  }
  for (const Command& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      mtlite::kernels::level_from_environment();
      return c.run(argc - 2, argv + 2);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mtlite %s: %s\n", c.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "mtlite: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
