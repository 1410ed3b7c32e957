/* The problems of a batch task (l2l_task_batch_create), for meta-training, which runs
 * them as the optimizees of a meta-batch, each on its own (src/meta/train.c). Not part
 * of the API. */
#ifndef L2L_TASKS_BATCH_H
#define L2L_TASKS_BATCH_H

#include "l2l.h"

/* B, with *children pointing at the batch's B problems, or 0 if task is not a batch. */
int l2l_task_batch_children(const l2l_task *task, l2l_task **children);

#endif
