/* The subcommands of the l2l tool, one file each (tools/cmd_NAME.c). Each takes its own
 * argv (argv[0] is the subcommand's name) and reports a tool_result to main(). */
#ifndef L2L_TOOLS_COMMANDS_H
#define L2L_TOOLS_COMMANDS_H

#include "opts.h"

tool_result cmd_train(int argc, char **argv);
tool_result cmd_eval(int argc, char **argv);
tool_result cmd_tune(int argc, char **argv);
tool_result cmd_compare(int argc, char **argv);
tool_result cmd_info(int argc, char **argv);
tool_result cmd_plot(int argc, char **argv);
tool_result cmd_pair(int argc, char **argv);

#endif
