/* Atomic replacement of a file: see atomic.h. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic.h"
#include "util/util.h"

l2l_status l2l_io_error(l2l_error *err, const char *what, const char *doing, int errnum)
{
    if (errnum == ENOSPC)
        return l2l_error_set(err, L2L_STATUS_IO,
                             "%s: disk full (ENOSPC) while %s; free some space and try again",
                             what, doing);
    return l2l_error_set(err, L2L_STATUS_IO, "%s: %s failed: %s", what, doing,
                         errnum ? strerror(errnum) : "unknown error");
}

static void release(l2l_atomic *a)
{
    free(a->path);
    free(a->tmp);
    memset(a, 0, sizeof *a);
}

l2l_status l2l_atomic_open(l2l_atomic *a, const char *path, l2l_error *err)
{
    memset(a, 0, sizeof *a);
    size_t n = strlen(path) + sizeof ".tmp.XXXXXX";
    a->path = strdup(path);
    a->tmp = malloc(n);
    if (!a->path || !a->tmp) {
        release(a);
        return l2l_error_set(err, L2L_STATUS_NOMEM, "%s: cannot allocate", path);
    }
    snprintf(a->tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(a->tmp);
    if (fd < 0) {
        int e = errno;
        l2l_status st = e == ENOSPC ? l2l_io_error(err, path, "creating a temporary file", e)
                                    : l2l_error_set(err, L2L_STATUS_IO,
                                                    "cannot write %s: cannot create the temporary "
                                                    "file %s: %s (does the directory exist and is "
                                                    "it writable?)",
                                                    path, a->tmp, strerror(e));
        release(a);
        return st;
    }
    /* mkstemp creates the file 0600; results are ordinary readable files. Failure (on a
     * file system without modes) leaves it private, which is harmless. */
    (void)fchmod(fd, 0644);
    a->f = fdopen(fd, "wb");
    if (!a->f) {
        int e = errno;
        close(fd);
        unlink(a->tmp);
        l2l_status st = l2l_io_error(err, path, "opening a stream", e);
        release(a);
        return st;
    }
    return L2L_STATUS_OK;
}

/* Makes the rename itself durable. Best effort: the data are already safe in the file,
 * and a failure here must not report a write that did happen as failed. */
static void sync_directory_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return;
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

l2l_status l2l_atomic_commit(l2l_atomic *a, l2l_error *err)
{
    l2l_status st = L2L_STATUS_OK;
    if (a->f) {
        if (ferror(a->f) || fflush(a->f) != 0) st = l2l_io_error(err, a->path, "writing", errno);
        if (!st && fsync(fileno(a->f)) != 0) st = l2l_io_error(err, a->path, "fsync", errno);
        if (fclose(a->f) != 0 && !st) st = l2l_io_error(err, a->path, "closing the file", errno);
        a->f = NULL;
    } else {
        int fd = open(a->tmp, O_WRONLY);
        if (fd < 0 || fsync(fd) != 0) st = l2l_io_error(err, a->path, "fsync", errno);
        if (fd >= 0) close(fd);
    }
    if (!st && rename(a->tmp, a->path) != 0)
        st = l2l_error_set(err, L2L_STATUS_IO, "cannot write %s: renaming %s over it failed: %s",
                           a->path, a->tmp, strerror(errno));
    if (st) unlink(a->tmp); /* the previous file at path is untouched */
    else sync_directory_of(a->path);
    release(a);
    return st;
}

void l2l_atomic_abort(l2l_atomic *a)
{
    if (a->f) fclose(a->f);
    if (a->tmp) unlink(a->tmp);
    release(a);
}
