// The subcommands, one per file: each takes the arguments after its name.
#pragma once

int cmd_bench(int argc, char** argv);
int cmd_convert(int argc, char** argv);
int cmd_embed(int argc, char** argv);
int cmd_encode(int argc, char** argv);
int cmd_inspect(int argc, char** argv);
int cmd_split(int argc, char** argv);
int cmd_synth(int argc, char** argv);
int cmd_train(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_predict(int argc, char** argv);
