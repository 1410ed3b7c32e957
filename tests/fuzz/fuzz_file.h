/* Gives each fuzz input a path, as the loaders take paths: an anonymous memory file
 * (memfd_create) reached through /proc/self/fd/N and rewritten for every input. Nothing
 * touches the disk, so a run that crashes or is killed leaves no temporary file. */
#ifndef L2L_FUZZ_FILE_H
#define L2L_FUZZ_FILE_H
/* The including file defines _GNU_SOURCE first, for memfd_create. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct {
    int fd;
    char path[64];
} fuzz_file;

static void fuzz_file_open(fuzz_file *f, const char *name)
{
    f->fd = memfd_create(name, MFD_CLOEXEC);
    if (f->fd < 0) {
        perror("memfd_create");
        abort();
    }
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

/* Replaces the file's contents with data[0, size). */
static void fuzz_file_set(fuzz_file *f, const void *data, size_t size)
{
    if (ftruncate(f->fd, 0) != 0 || (size && pwrite(f->fd, data, size, 0) != (ssize_t)size)) {
        perror("memfd write");
        abort();
    }
}

#endif
