/* Atomic replacement of a file: see atomic.h. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
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
    if (errnum == EFBIG)
        return l2l_error_set(err, L2L_STATUS_IO,
                             "%s: file too large (EFBIG) while %s: the file-size limit (ulimit -f) "
                             "or the file system's was reached; the previous file is untouched",
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

/* The mode new files get: 0666 less the umask, read from /proc (umask() itself would
 * change the process's mask, global state the library does not touch); 022 where
 * /proc does not say. */
static mode_t new_file_mode(void)
{
    mode_t mask = 022;
    FILE *f = fopen("/proc/self/status", "r");
    char line[128];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "Umask:", 6) == 0) mask = (mode_t)strtoul(line + 6, NULL, 8);
    if (f) fclose(f);
    return 0666 & ~mask;
}

/* Removes BASE.tmp.XXXXXX files in dir: temporaries of an earlier write of the same
 * destination that was killed between creating and renaming them. (Two processes
 * writing the same file at once would remove each other's; the loser's rename then
 * fails and its error says so, the destination intact.) */
static void remove_stale(const char *dir, const char *base)
{
    DIR *d = opendir(dir);
    if (!d) return;
    const size_t n = strlen(base);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *s = e->d_name;
        if (strncmp(s, base, n) != 0 || strncmp(s + n, ".tmp.", 5) != 0 || strlen(s + n + 5) != 6) continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, s) < (int)sizeof path) (void)unlink(path);
    }
    closedir(d);
}

/* Removes the stale temporaries of path (see remove_stale). */
static void remove_stale_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (dir) remove_stale(dir, slash ? slash + 1 : path);
    free(dir);
}

void l2l_atomic_remove(const char *path)
{
    (void)unlink(path);
    remove_stale_of(path);
}

l2l_status l2l_atomic_open(l2l_atomic *a, const char *path, l2l_error *err)
{
    memset(a, 0, sizeof *a);
    /* A symbolic link is followed: its target is replaced, the link stays a link. */
    struct stat sb;
    int exists = stat(path, &sb) == 0;
    char *target = exists ? realpath(path, NULL) : NULL;
    if (exists && !S_ISREG(sb.st_mode)) {
        free(target);
        return l2l_error_set(err, L2L_STATUS_IO, "cannot write %s: it exists and is %s, not a regular file; "
                             "give a file name", path, S_ISDIR(sb.st_mode) ? "a directory" : "a special file");
    }
    a->path = target ? target : strdup(path);
    size_t n = strlen(a->path) + sizeof ".tmp.XXXXXX";
    a->tmp = malloc(n);
    if (!a->path || !a->tmp) {
        release(a);
        return l2l_error_set(err, L2L_STATUS_NOMEM, "%s: cannot allocate", path);
    }
    remove_stale_of(a->path);
    snprintf(a->tmp, n, "%s.tmp.XXXXXX", a->path);
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
    /* mkstemp creates the file 0600; the result keeps the mode of the file it replaces,
     * or gets an ordinary new file's. Failure (on a file system without modes) leaves it
     * private, which is harmless. */
    (void)fchmod(fd, exists ? sb.st_mode & 07777 : new_file_mode());
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
