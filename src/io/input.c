/* Opening input files: regular files only, without blocking on anything else (input.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "io/input.h"

static const char *file_kind(mode_t mode)
{
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a named pipe (FIFO)";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "a file of another kind";
}

int l2l_input_open(const char *path, const char *what, off_t *size, l2l_error *err)
{
    /* O_NOCTTY: opening a terminal device must not make it ours before it is refused. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        l2l_error_set(err, L2L_STATUS_IO, "cannot open %s %s: %s", what, path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        l2l_error_set(err, L2L_STATUS_IO, "cannot read %s %s: fstat failed: %s", what, path,
                      strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        l2l_error_set(err, L2L_STATUS_IO, "cannot read %s %s: it is %s, not a regular file; "
                      "give the path of a file", what, path, file_kind(sb.st_mode));
        close(fd);
        return -1;
    }
    /* Blocking reads from here on, as any reader of a regular file expects. */
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    *size = sb.st_size;
    return fd;
}
