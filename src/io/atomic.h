/* Writes that must not leave a half-written file where a good one was (checkpoints,
 * results, figures): write a temporary file in the destination's directory, flush and
 * fsync it, rename it over the destination, sync the directory. Internal to the library
 * and the tools. */
#ifndef L2L_ATOMIC_H
#define L2L_ATOMIC_H

#include <stdio.h>

#include "l2l.h"

typedef struct {
    char *path; /* the destination */
    char *tmp;  /* PATH.tmp.XXXXXX, with the mode the result will have */
    FILE *f;    /* open for writing; may be closed and set to NULL by a caller that lets
                   another library write tmp by name */
} l2l_atomic;

/* Creates the temporary file; on failure nothing is left behind. A symbolic link at
 * path is followed (its target is replaced); an existing path that is not a regular
 * file is refused; the result keeps the mode of the file it replaces; temporaries of
 * an earlier write of path that crashed before its rename are removed. */
l2l_status l2l_atomic_open(l2l_atomic *a, const char *path, l2l_error *err);
/* Flushes, fsyncs and closes the temporary file, renames it over path. On failure the
 * temporary file is removed and path is untouched. Frees a either way. */
l2l_status l2l_atomic_commit(l2l_atomic *a, l2l_error *err);
/* Removes path (a file no longer wanted, such as a finished run's training state) and
 * the temporaries a crashed write of it left. */
void l2l_atomic_remove(const char *path);
/* Closes and removes the temporary file; frees a. */
void l2l_atomic_abort(l2l_atomic *a);
/* An I/O error message naming the file, what was being done and why; a full disk
 * (ENOSPC) is said as such. */
l2l_status l2l_io_error(l2l_error *err, const char *what, const char *doing, int errnum);

#endif
