/* The tool's output paths (see paths.h). */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "paths.h"

/* The directory part of path ("." when it has none). */
static void dir_of(const char *path, char *buf, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(buf, n, ".");
    else snprintf(buf, n, "%.*s", slash == path ? 1 : (int)(slash - path), path);
}

tool_result path_check_output(const char *cmd, const char *opt, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return tool_usage(cmd, "--%s '%s' is %s; expected a file name", opt, path,
                          S_ISDIR(sb.st_mode) ? "a directory" : "not a regular file (a pipe or device)");
    char dir[PATH_MAX];
    dir_of(path, dir, sizeof dir);
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return tool_usage(cmd, "--%s '%s': the directory '%s' does not exist", opt, path, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return tool_usage(cmd, "--%s '%s': the directory '%s' is not writable", opt, path, dir);
    return TOOL_OK;
}

tool_result path_check_dir(const char *cmd, const char *opt, const char *path)
{
    if (strchr(path, '%'))
        return tool_usage(cmd, "--%s '%s': the figures' library (PLplot) expands '%%' in file names; "
                               "choose a directory name without '%%'", opt, path);
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
            return tool_usage(cmd, "--%s '%s' exists and is not a directory", opt, path);
        if (access(path, W_OK | X_OK) != 0)
            return tool_usage(cmd, "--%s '%s': the directory is not writable", opt, path);
        return TOOL_OK;
    }
    char parent[PATH_MAX];
    dir_of(path, parent, sizeof parent);
    if (stat(parent, &sb) != 0 || !S_ISDIR(sb.st_mode) || access(parent, W_OK | X_OK) != 0)
        return tool_usage(cmd, "--%s '%s' cannot be created: '%s' is not a writable directory", opt, path,
                          parent);
    return TOOL_OK;
}

int path_same(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char da[PATH_MAX], db[PATH_MAX];
    dir_of(a, da, sizeof da), dir_of(b, db, sizeof db);
    const char *na = strrchr(a, '/'), *nb = strrchr(b, '/');
    na = na ? na + 1 : a, nb = nb ? nb + 1 : b;
    if (strcmp(na, nb) != 0) return 0;
    char *ra = realpath(da, NULL), *rb = realpath(db, NULL);
    const int same = ra && rb ? strcmp(ra, rb) == 0 : strcmp(da, db) == 0;
    free(ra), free(rb);
    return same;
}

int path_sibling(const char *out, const char *suffix, char *buf, size_t n)
{
    static const char ext[] = ".safetensors";
    const char *name = strrchr(out, '/');
    name = name ? name + 1 : out;
    size_t len = strlen(out);
    const size_t e = sizeof ext - 1;
    if (strlen(name) > e && strcmp(out + len - e, ext) == 0) len -= e;
    return snprintf(buf, n, "%.*s%s", (int)len, out, suffix) < (int)n;
}

int path_replace(const char *tmp, const char *dest)
{
    struct stat sb;
    char *target = stat(dest, &sb) == 0 ? realpath(dest, NULL) : NULL;
    if (target) (void)chmod(tmp, sb.st_mode & 07777);
    const int rc = rename(tmp, target ? target : dest) == 0 ? 0 : errno;
    free(target);
    return rc;
}
