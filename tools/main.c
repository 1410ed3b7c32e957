/* l2l: the command-line tool, a thin layer over libl2l; one file per subcommand
 * (tools/cmd_*.c) over the option parser of tools/opts.c. Started by mpirun, every
 * process runs the same subcommand, and 'l2l train' shares its work among them
 * (tools/comm_mpi.c).
 *
 * Only main() turns a subcommand's result into an exit code: 0 success, 1 runtime
 * failure, 2 bad usage, 3 diverged. */
#include <stdio.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <cblas.h>

#include "comm.h"
#include "commands.h"

static const struct {
    const char *name;
    tool_result (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"train", cmd_train, "meta-train an LSTM optimizer on a task family; save it as safetensors"},
    {"eval", cmd_eval, "run an optimizer on fresh test problems; write its mean loss curve (CSV)"},
    {"tune", cmd_tune, "find a baseline's best learning rate on validation problems"},
    {"compare", cmd_compare, "tuned SGD/NAG/RMSprop/Adam vs a learned optimizer: CSVs, table, figure"},
    {"pair", cmd_pair, "pair the optimizers of several comparisons on their common test problems"},
    {"info", cmd_info, "describe a checkpoint"},
    {"plot", cmd_plot, "draw the curves of a CSV (curves.csv, a sweep) as a PNG or SVG figure"},
};

void tool_threads(int n)
{
#ifdef _OPENMP
    if (n) omp_set_num_threads(n);
#else
    (void)n;
#endif
}

static void help(FILE *f)
{
    fputs("usage: l2l COMMAND [options]   (l2l COMMAND --help for each)\n\n"
          "Learned optimizers: 'Learning to learn by gradient descent by gradient descent'.\n\n",
          f);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
}

/* The subcommand named by argv[1], on one process or on every process of an MPI job. */
static tool_result run(int argc, char **argv)
{
    if (argc < 2) {
        help(stderr);
        return TOOL_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        help(stdout);
        return TOOL_OK;
    }
    if (tool_comm_size() > 1 && strcmp(cmd, "train") != 0) {
        if (tool_comm_rank() == 0)
            fprintf(stderr, "l2l %s: runs on one process; only 'l2l train' shares its work among the %d "
                    "processes of an MPI job (run it without mpirun)\n", cmd, tool_comm_size());
        return TOOL_USAGE;
    }
    /* The threads are l2l's own (OpenMP, --threads). BLAS runs on one: the MLP's products
     * are small (128 x 784 x 20), and OpenBLAS's threaded sgemm rounds differently with
     * its thread count, which would make MNIST results depend on --threads. */
    openblas_set_num_threads(1);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "l2l: unknown command '%s'\n", cmd);
    help(stderr);
    return TOOL_USAGE;
}

int main(int argc, char **argv)
{
    static const int exit_code[] = {[TOOL_OK] = 0, [TOOL_FAILED] = 1, [TOOL_USAGE] = 2, [TOOL_HELP] = 0,
                                  [TOOL_DIVERGED] = 3};
    if (tool_comm_start(&argc, &argv) != 0) return exit_code[TOOL_FAILED];
    return exit_code[tool_comm_end(run(argc, argv))];
}
