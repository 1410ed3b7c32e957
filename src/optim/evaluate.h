/* Evaluation's internals (evaluate.c), not part of the API. */
#ifndef L2L_OPTIM_EVALUATE_H
#define L2L_OPTIM_EVALUATE_H

#include "l2l.h"

/* l2l_evaluate's runs first .. first + count - 1 of cfg's, each the same as there
 * (run r draws from its own sub-seed), into loss (count, steps + 1): what one process
 * of several evaluates (src/meta/train.c). */
l2l_status l2l_evaluate_runs(l2l_task *task, const l2l_opt_spec *spec, const l2l_eval_config *cfg,
                             int first, int count, double *loss, l2l_error *err);

#endif
