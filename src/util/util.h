/* Internal helpers shared by the library's source files; not part of the API. */
#ifndef L2L_UTIL_H
#define L2L_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "l2l.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* Programmer errors: print file:line and abort, in every build. */
#define L2L_ASSERT(cond)                                                                  \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: l2l internal error: assertion '%s' failed\n", __FILE__, \
                    __LINE__, #cond);                                                     \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* Allocations: zeroed, 64-byte aligned; free with l2l_free. Returns NULL on failure. */
void *l2l_alloc(size_t bytes);
void l2l_free(void *p);

/* OpenMP's current maximum of threads, and this thread's number in its team (1 and 0
 * without OpenMP). */
static inline int max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static inline int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

#endif
