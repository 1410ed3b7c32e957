/* l2l-pingpong: MPI's latency and bandwidth between processes 0 and 1, and the time of
 * the allgather that a meta-update of truncated backpropagation makes, for the scaling
 * model of docs/DISTRIBUTED.md (scripts/bench_mpi.sh runs it).
 *
 *   mpirun -np 2 build/l2l-pingpong [P]      (P: weights of phi, 5301)
 *
 * One line per measurement, "RESULT what bytes seconds": pingpong lines give half a
 * round trip (the median of 9 rounds of 1,000 to 50 round trips), allgather lines the
 * time of MPI_Allgatherv of one record of P floats per process (the median of 9 rounds
 * of 200). Process 0 prints. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const long P = argc > 1 ? atol(argv[1]) : 5301;
    if (size < 2 || P < 1) {
        if (rank == 0) fprintf(stderr, "usage: mpirun -np 2 l2l-pingpong [P]   (2 or more processes)\n");
        MPI_Finalize();
        return 2;
    }
    enum { ROUNDS = 9 };
    const size_t max = (size_t)1 << 24;
    char *buf = calloc(max, 1);
    double t[ROUNDS];
    for (size_t bytes = 8; bytes <= max; bytes *= 8) {
        const int reps = bytes <= 65536 ? 1000 : 50;
        for (int r = 0; r < ROUNDS; r++) {
            MPI_Barrier(MPI_COMM_WORLD);
            const double t0 = MPI_Wtime();
            for (int i = 0; i < reps && rank < 2; i++) {
                if (rank == 0) {
                    MPI_Send(buf, (int)bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
                    MPI_Recv(buf, (int)bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                } else {
                    MPI_Recv(buf, (int)bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                    MPI_Send(buf, (int)bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
                }
            }
            t[r] = (MPI_Wtime() - t0) / (2.0 * reps);
        }
        if (rank == 0) printf("RESULT pingpong %zu %.9f\n", bytes, median(t, ROUNDS));
    }
    /* One record per process, as the meta-gradients of truncated backpropagation travel. */
    const size_t rec = (size_t)P * sizeof(float);
    float *all = calloc((size_t)size * (size_t)P, sizeof(float));
    int *counts = malloc((size_t)size * sizeof(int)), *displs = malloc((size_t)size * sizeof(int));
    for (int r = 0; r < size; r++) counts[r] = (int)rec, displs[r] = (int)(r * rec);
    for (int r = 0; r < ROUNDS; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        const double t0 = MPI_Wtime();
        for (int i = 0; i < 200; i++)
            MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, all, counts, displs, MPI_BYTE, MPI_COMM_WORLD);
        t[r] = (MPI_Wtime() - t0) / 200;
    }
    if (rank == 0) printf("RESULT allgather %zu %.9f\n", rec * (size_t)size, median(t, ROUNDS));
    free(buf), free(all), free(counts), free(displs);
    MPI_Finalize();
    return 0;
}
