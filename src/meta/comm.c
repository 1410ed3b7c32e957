/* Work shared among processes (comm.h): the blocks, the records and their exchange. The
 * records travel whole (a meta-gradient of P floats per optimizee, a loss curve per
 * particle) and every process adds them up itself in unit order: float sums depend on
 * their order, and this order is the same whatever the number of processes, so the
 * bytes are too. At P = 5,301 weights a record is 21 kB; docs/DISTRIBUTED.md has what a
 * meta-update sends and when that starts to matter. */
#include <string.h>

#include "meta/comm.h"
#include "util/util.h"

static l2l_status one_allgather(void *ctx, void *buf, size_t bytes, const int *first, l2l_error *err)
{
    return L2L_STATUS_OK; /* this process's records are all there are */
}

static l2l_status one_broadcast(void *ctx, void *buf, size_t bytes, int root, l2l_error *err)
{
    return L2L_STATUS_OK;
}

const l2l_comm l2l_comm_one = {.rank = 0, .size = 1, .allgather = one_allgather, .broadcast = one_broadcast};

typedef struct {
    int32_t status;
    int32_t unused;
} head;

l2l_status l2l_share_create(l2l_share *s, const l2l_comm *comm, int units, size_t payload,
                            l2l_error *err)
{
    memset(s, 0, sizeof *s);
    s->failed = -1;
    if (!comm->allgather || !comm->broadcast || comm->size < 1 || comm->rank < 0 || comm->rank >= comm->size)
        return l2l_error_set(err, L2L_STATUS_ARG, "the communicator is not usable: process %d of %d, %s",
                             comm->rank, comm->size,
                             comm->allgather && comm->broadcast ? "which is not one of them"
                                                                : "without its allgather and broadcast");
    L2L_ASSERT(units >= 0);
    s->comm = comm;
    s->units = units;
    s->bytes = sizeof(head) + (payload + 7) / 8 * 8;
    s->first = l2l_alloc((size_t)(comm->size + 1) * sizeof *s->first);
    s->rec = l2l_alloc((units > 0 ? (size_t)units : 1) * s->bytes);
    if (!s->first || !s->rec)
        return l2l_error_set(err, L2L_STATUS_NOMEM, "cannot allocate %d records of %zu bytes to share among "
                             "processes", units, s->bytes);
    for (int r = 0; r <= comm->size; r++) s->first[r] = (int)((int64_t)units * r / comm->size);
    s->lo = s->first[comm->rank];
    s->hi = s->first[comm->rank + 1];
    return L2L_STATUS_OK;
}

void l2l_share_free(l2l_share *s)
{
    l2l_free(s->first);
    l2l_free(s->rec);
    memset(s, 0, sizeof *s);
}

void *l2l_share_at(const l2l_share *s, int u)
{
    L2L_ASSERT(u >= 0 && u < s->units);
    return s->rec + (size_t)u * s->bytes + sizeof(head);
}

void l2l_share_fail(l2l_share *s, int u, l2l_status st, const l2l_error *e)
{
    L2L_ASSERT(u >= s->lo && u < s->hi && st != L2L_STATUS_OK);
    ((head *)(s->rec + (size_t)u * s->bytes))->status = (int32_t)st;
    if (s->failed < 0 || u < s->failed) {
        s->failed = u;
        snprintf(s->err.msg, sizeof s->err.msg, "%s", e ? e->msg : "");
    }
}

/* The process that does unit u. */
static int owner(const l2l_share *s, int u)
{
    int r = 0;
    while (s->first[r + 1] <= u) r++;
    return r;
}

l2l_status l2l_share_exchange(l2l_share *s, int *failed_unit, l2l_error *err)
{
    const l2l_comm *c = s->comm;
    l2l_status st = c->allgather(c->ctx, s->rec, s->bytes, s->first, err);
    if (st) return st;
    int bad = -1;
    for (int u = 0; u < s->units && bad < 0; u++)
        if (((head *)(s->rec + (size_t)u * s->bytes))->status) bad = u;
    if (bad >= 0) { /* every process learns the message of the process that had it */
        l2l_error e;
        const int from = owner(s, bad);
        memcpy(e.msg, s->err.msg, sizeof e.msg);
        if ((st = c->broadcast(c->ctx, e.msg, sizeof e.msg, from, err))) return st;
        e.msg[sizeof e.msg - 1] = 0;
        st = (l2l_status)((head *)(s->rec + (size_t)bad * s->bytes))->status;
        l2l_error_set(err, st, "%s", e.msg);
        if (failed_unit) *failed_unit = bad;
    }
    for (int u = s->lo; u < s->hi; u++) ((head *)(s->rec + (size_t)u * s->bytes))->status = 0;
    s->failed = -1;
    return st;
}

l2l_status l2l_comm_agree(const l2l_comm *comm, l2l_status st, l2l_error *err)
{
    if (comm->size == 1) return st;
    l2l_share s;
    l2l_error mine = {0};
    if (st && err) mine = *err;
    l2l_status cst = l2l_share_create(&s, comm, comm->size, 0, err);
    if (cst) return cst;
    if (st) l2l_share_fail(&s, comm->rank, st, &mine);
    int who = -1;
    cst = l2l_share_exchange(&s, &who, err);
    l2l_share_free(&s);
    if (cst && who >= 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        l2l_error_set(err, cst, "process %d of %d: %s", who, comm->size, msg);
    }
    return cst;
}
