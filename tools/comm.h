/* The processes of an MPI job, for `l2l train` on several machines (tools/comm_mpi.c,
 * docs/DISTRIBUTED.md). The library takes an l2l_comm and knows no MPI; this is where
 * the tool makes one. Built without MPI (make MPI=0), the tool runs as one process and
 * refuses to start as one of several. */
#ifndef L2L_TOOLS_COMM_H
#define L2L_TOOLS_COMM_H

#include "l2l.h"
#include "opts.h"

/* Joins the MPI job if an MPI launcher (mpirun, or srun --mpi=pmix) started this
 * process; a process started otherwise is alone. Returns 0, or non-zero after printing
 * why it cannot start (launched as one of several without MPI). */
int tool_comm_start(int *argc, char ***argv);
/* The job's communicator, or NULL for a process alone. */
const l2l_comm *tool_comm(void);
int tool_comm_rank(void); /* 0 for a process alone */
int tool_comm_size(void); /* 1 for a process alone */
/* Collective, once, when a command is about to work with the others: whether every
 * process got there (0) or one of them failed to set up (non-zero; it has said why).
 * A process that fails before it gets there takes part from tool_comm_end instead, so
 * that no process waits for it. */
int tool_comm_join(void);
/* Collective: whether flag is set on any process. */
int tool_comm_any(int flag);
/* For a signal handler: on process 0 of several, says once that the job is stopping and
 * that the last training state, `state` (tool_comm_state), is intact (a process that
 * dies makes mpirun stop the others with SIGTERM; they may be waiting for it and never
 * reach another state). */
void tool_comm_state(const char *state);
void tool_comm_signalled(int sig);
/* Leaves the job: joins first if the command never did (with result's success), then
 * MPI_Finalize. Returns result. */
tool_result tool_comm_end(tool_result result);

#endif
