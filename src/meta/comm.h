/* Work shared among the processes of an l2l_comm (comm.c; docs/DISTRIBUTED.md). A share
 * is U units of work (the optimizees of a meta-batch, the particles of ES and PES, the
 * validation problems) cut into contiguous blocks, process r doing units first[r] ..
 * first[r + 1] - 1. Each process writes one record per unit it does: a head, the unit's
 * status, then a fixed-size payload (losses, a meta-gradient). An exchange gives every
 * process every record, so that each combines them in unit order, the same order
 * whatever the number of processes, and gets the same bytes. A unit that failed carries
 * its status; the exchange then fails on every process with the message of the first
 * failed unit. Not part of the API. */
#ifndef L2L_META_COMM_H
#define L2L_META_COMM_H

#include "l2l.h"

/* The communicator of a process alone: its collectives have nothing to do. */
extern const l2l_comm l2l_comm_one;

typedef struct {
    const l2l_comm *comm;
    int units;           /* U */
    int lo, hi;          /* this process's units: lo .. hi - 1 */
    int *first;          /* (size + 1) the blocks */
    size_t bytes;        /* of a record: the 8-byte head, then the payload padded to 8 */
    unsigned char *rec;  /* (U, bytes) */
    int failed;          /* this process's first failed unit since the last exchange, or -1 */
    l2l_error err;       /* its message */
} l2l_share;

/* Checks the communicator (L2L_STATUS_ARG), then allocates U records of `payload` bytes. */
l2l_status l2l_share_create(l2l_share *s, const l2l_comm *comm, int units, size_t payload,
                            l2l_error *err);
void l2l_share_free(l2l_share *s);
/* Unit u's payload (8-byte aligned). */
void *l2l_share_at(const l2l_share *s, int u);
/* This process's unit u failed with st and e's message. */
void l2l_share_fail(l2l_share *s, int u, l2l_status st, const l2l_error *e);
/* Collective: every process gets every record. If a unit failed, returns its status and
 * message (the first failed unit's, on every process) and *failed_unit (may be NULL)
 * receives it. The heads are then cleared for the next round. */
l2l_status l2l_share_exchange(l2l_share *s, int *failed_unit, l2l_error *err);

/* Collective: every process passes its own status (and err's message if it failed) and
 * gets the first failed process's, or L2L_STATUS_OK, the message prefixed with the
 * failed process's rank when there are several. */
l2l_status l2l_comm_agree(const l2l_comm *comm, l2l_status st, l2l_error *err);

#endif
