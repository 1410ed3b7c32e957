/* l2l plot: draws the series of a CSV file (loss curves, sweeps) as a PNG or SVG figure. */
#ifndef L2L_TOOLS_PLOTCMD_H
#define L2L_TOOLS_PLOTCMD_H

/* argv[0] is "plot". Returns the exit code: 0 success, 1 runtime failure, 2 bad usage. */
int l2l_cmd_plot(int argc, char **argv);

#endif
