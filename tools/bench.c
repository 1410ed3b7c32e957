/* l2l bench: placeholder until the benchmark lands; says so and fails. */
#include <stdio.h>

#include "bench.h"

int l2l_cmd_bench(int argc, char **argv)
{
    (void)argc, (void)argv;
    fprintf(stderr, "l2l bench: not available in this build yet\n");
    return 1;
}
