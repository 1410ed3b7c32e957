/* Opening a file to read it whole (IDX data, checkpoints, CSVs): internal to the library and
 * the tools.
 *
 * Every loader reads to the end of its file and checks lengths against the file's real
 * size, which only a regular file has. A directory fails late with EISDIR, a device can be
 * endless, and open() on a named pipe without a writer blocks forever. So the file is opened
 * with O_NONBLOCK (which makes open() on a pipe return at once), fstat'ed, and anything but a
 * regular file is refused with a message that says what the path is. */
#ifndef L2L_INPUT_H
#define L2L_INPUT_H

#include <sys/stat.h>

#include "l2l.h"

/* Opens path read-only and returns the descriptor (close it), its size in *size; or -1 with
 * L2L_STATUS_IO in err, the message starting "cannot read WHAT PATH: ". */
int l2l_input_open(const char *path, const char *what, off_t *size, l2l_error *err);

#endif
