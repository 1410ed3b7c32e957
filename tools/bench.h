/* l2l bench: throughput, FLOP rate and memory of meta-training and inference. */
#ifndef L2L_TOOLS_BENCH_H
#define L2L_TOOLS_BENCH_H

int l2l_cmd_bench(int argc, char **argv);

#endif
