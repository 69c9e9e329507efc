// The subcommands, one per file: each takes the arguments after its name.
#pragma once

int cmd_bench(int argc, char** argv);
