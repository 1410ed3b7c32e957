/* The tool's output paths, checked before any work starts so that a mistyped path fails
 * in a second, not after an hour of training; and the names of the files that travel
 * with a checkpoint (its log, training state and failed result). */
#ifndef L2L_TOOLS_PATHS_H
#define L2L_TOOLS_PATHS_H

#include <stddef.h>

#include "opts.h"

/* An output file for option --opt: if it exists, a regular file (or a link to one);
 * its directory exists and is writable. TOOL_OK or TOOL_USAGE (message printed). */
tool_result path_check_output(const char *cmd, const char *opt, const char *path);
/* An output directory: an existing, writable directory, or one that can be created (its
 * parent exists and is writable). Without '%': PLplot, which writes the figures into
 * it, expands '%' in file names (%n, %p) and would send them elsewhere. */
tool_result path_check_dir(const char *cmd, const char *opt, const char *path);
/* Whether a and b name the same file: the same file if both exist, else the same
 * directory and name. */
int path_same(const char *a, const char *b);
/* OUT's stem (OUT less a ".safetensors" at the end of its name) followed by suffix:
 * "m.safetensors.d/q.safetensors" with "-log.csv" is "m.safetensors.d/q-log.csv".
 * Returns 0 if it does not fit in n bytes. */
int path_sibling(const char *out, const char *suffix, char *buf, size_t n);
/* Renames the finished file tmp over dest, the way l2l_atomic does: dest's mode is
 * kept and a link at dest has its target replaced. Returns 0 or an errno value. */
int path_replace(const char *tmp, const char *dest);

#endif
