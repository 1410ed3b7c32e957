/* The tool's l2l_comm over MPI (tools/comm.h; docs/DISTRIBUTED.md), compiled with
 * L2L_WITH_MPI (the Makefile's MPI=1, the default when Open MPI's pkg-config file is
 * found); without it, the stubs at the end.
 *
 * MPI starts only in a process that an MPI launcher started (mpirun sets
 * OMPI_COMM_WORLD_SIZE, srun --mpi=pmix PMIX_RANK, PMI launchers PMI_SIZE): a plain
 * `l2l` never touches MPI, whose start-up as a lone process (a "singleton") costs time
 * and, as root, refuses to run. Meta-training's collectives are MPI_Allgatherv (the
 * records of comm.h, as one contiguous type per record) and MPI_Bcast on a duplicate of
 * MPI_COMM_WORLD. MPI's errors stay fatal: a process that dies or fails in MPI makes
 * mpirun end the whole job with its message, rather than leave the others waiting. */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm.h"

/* The size an MPI launcher gave this process's job, from its environment; 0 if it has
 * none. srun without an MPI plugin starts tasks that know only SLURM_STEP_NUM_TASKS. */
static long launched_size(int *with_mpi)
{
    static const char *const sized[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    *with_mpi = getenv("PMIX_RANK") != NULL;
    long size = 0;
    for (int i = 0; i < 2; i++) {
        const char *v = getenv(sized[i]);
        if (v) *with_mpi = 1, size = strtol(v, NULL, 10);
    }
    if (*with_mpi && size == 0) size = 1; /* PMIx alone does not say */
    const char *slurm = getenv("SLURM_STEP_NUM_TASKS");
    if (!*with_mpi && slurm) size = strtol(slurm, NULL, 10);
    return size;
}

#ifdef L2L_WITH_MPI
#include <mpi.h>

static struct {
    MPI_Comm comm;
    int started, joined;
    int *counts, *displs; /* (size) for MPI_Allgatherv */
    l2l_comm c;
    char stop_msg[1024];
    volatile sig_atomic_t told;
} job;

static l2l_status mpi_allgather(void *ctx, void *buf, size_t bytes, const int *first, l2l_error *err)
{
    if (bytes > INT_MAX)
        return l2l_error_set(err, L2L_STATUS_ARG, "a record of %zu bytes is too large for MPI (at most %d)",
                             bytes, INT_MAX);
    for (int r = 0; r < job.c.size; r++) job.counts[r] = first[r + 1] - first[r], job.displs[r] = first[r];
    MPI_Datatype rec;
    MPI_Type_contiguous((int)bytes, MPI_BYTE, &rec);
    MPI_Type_commit(&rec);
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, job.counts, job.displs, rec, job.comm);
    MPI_Type_free(&rec);
    return L2L_STATUS_OK;
}

static l2l_status mpi_broadcast(void *ctx, void *buf, size_t bytes, int root, l2l_error *err)
{
    if (bytes > INT_MAX)
        return l2l_error_set(err, L2L_STATUS_ARG, "a broadcast of %zu bytes is too large for MPI (at most %d)",
                             bytes, INT_MAX);
    MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, job.comm);
    return L2L_STATUS_OK;
}

int tool_comm_start(int *argc, char ***argv)
{
    int with_mpi;
    const long size = launched_size(&with_mpi);
    if (!with_mpi && size > 1) {
        fprintf(stderr, "l2l: started as one of %ld tasks without MPI (srun without --mpi=pmix?); every "
                "task would train alone and write the same files. Start l2l with mpirun, or with "
                "srun --mpi=pmix.\n", size);
        return 1;
    }
    if (!with_mpi) return 0;
    int provided;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided); /* OpenMP threads never call MPI */
    job.started = 1;
    MPI_Comm_dup(MPI_COMM_WORLD, &job.comm);
    MPI_Comm_rank(job.comm, &job.c.rank);
    MPI_Comm_size(job.comm, &job.c.size);
    job.counts = calloc((size_t)job.c.size, sizeof(int));
    job.displs = calloc((size_t)job.c.size, sizeof(int));
    if (!job.counts || !job.displs) {
        fprintf(stderr, "l2l: out of memory for an MPI job of %d processes\n", job.c.size);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    job.c.allgather = mpi_allgather;
    job.c.broadcast = mpi_broadcast;
    tool_comm_state("STATE");
    return 0;
}

void tool_comm_state(const char *state)
{
    snprintf(job.stop_msg, sizeof job.stop_msg,
             "\nl2l train: process 0 of %d got a signal to stop, from mpirun or the batch system, which stop "
             "every process when one dies. The last training state saved, %.200s, is intact: continue "
             "with 'mpirun ... l2l train --resume %.200s', on any number of processes.\n", job.c.size, state,
             state);
}

const l2l_comm *tool_comm(void) { return job.started ? &job.c : NULL; }
int tool_comm_rank(void) { return job.started ? job.c.rank : 0; }
int tool_comm_size(void) { return job.started ? job.c.size : 1; }

int tool_comm_join(void)
{
    if (!job.started || job.joined) return 0;
    job.joined = 1;
    return tool_comm_any(0);
}

/* The join of a process that failed before it got there: its vote says so. */
static int join_failed(void)
{
    job.joined = 1;
    return tool_comm_any(1);
}

int tool_comm_any(int flag)
{
    if (!job.started) return flag;
    int any = 0;
    MPI_Allreduce(&flag, &any, 1, MPI_INT, MPI_LOR, job.comm);
    return any;
}

void tool_comm_signalled(int sig)
{
    if (!job.started || job.c.size < 2 || job.c.rank != 0 || job.told) return;
    job.told = 1;
    const ssize_t w = write(STDERR_FILENO, job.stop_msg, strlen(job.stop_msg)); /* async-signal-safe */
    (void)w;
}

tool_result tool_comm_end(tool_result result)
{
    if (!job.started) return result;
    if (!job.joined) {
        if (result == TOOL_OK || result == TOOL_HELP) tool_comm_join();
        else join_failed();
    }
    MPI_Comm_free(&job.comm);
    MPI_Finalize();
    free(job.counts), free(job.displs);
    return result;
}

#else /* built without MPI: a process alone, which refuses to be one of several */

int tool_comm_start(int *argc, char ***argv)
{
    int with_mpi;
    const long size = launched_size(&with_mpi);
    const char *rank = getenv("PMIX_RANK");
    if (size > 1 || (rank && strcmp(rank, "0") != 0)) {
        fprintf(stderr, "l2l: started as one of several processes (mpirun or srun), but this l2l was built "
                "without MPI (make MPI=0); every process would train alone and write the same files. "
                "Rebuild it with Open MPI installed (libopenmpi-dev: make), or run one process.\n");
        return 1;
    }
    return 0;
}

const l2l_comm *tool_comm(void) { return NULL; }
int tool_comm_rank(void) { return 0; }
int tool_comm_size(void) { return 1; }
int tool_comm_join(void) { return 0; }
int tool_comm_any(int flag) { return flag; }
void tool_comm_state(const char *state) {}
void tool_comm_signalled(int sig) {}
tool_result tool_comm_end(tool_result result) { return result; }

#endif
