/* Internal: the one way batchlab writes an output file (export -o, report -o, and any later
 * writer): whole or not at all, and never over something that is not a regular file.
 *
 *   - FILE does not exist, or is a regular file: the text goes to a temporary file next to it
 *     ("FILE.tmp.<pid>.<n>", created 0666 less the umask), which is flushed, fsync'd and
 *     renamed over FILE at the end, so FILE is either the old one or the whole new one. A
 *     symbolic link to a regular file stays a link: its target is replaced.
 *   - FILE exists and is not a regular file (a device such as /dev/null, a FIFO, a terminal,
 *     /dev/stdout): it is opened and written in place, never renamed over (a rename would
 *     replace the device node or the FIFO by a plain file — as root, /dev/null for every
 *     program on the machine).
 *   - FILE is a directory: refused.
 */
#ifndef BATCHLAB_BASE_OUTFILE_H
#define BATCHLAB_BASE_OUTFILE_H

#include <stdbool.h>
#include <stdio.h>

#include "batchlab/error.h"

typedef struct bl__outfile {
    FILE *f;        /* write here (after a successful open) */
    char *path;     /* where the text ends up (a symbolic link resolved); malloc'd */
    char *tmp;      /* the temporary file, NULL when writing in place; malloc'd */
} bl__outfile;

/* Opens `path` for writing as described above. On success o->f is ready; on error o holds
 * nothing, and the message (naming `path`) is in ctx: BL_EIO (a directory, no permission, ...)
 * or BL_ENOMEM. */
int bl__outfile_open(bl_ctx *ctx, const char *path, bl__outfile *o);

/* True when the file is written in place (an existing special file). */
bool bl__outfile_in_place(const bl__outfile *o);

/* Finishes: flushes and closes, and for a regular file fsyncs and renames the temporary file
 * over the target. On any failure (a write error earlier included) the temporary file is
 * removed and the target left as it was; BL_EIO with the message naming the file. o holds
 * nothing afterwards. */
int bl__outfile_commit(bl_ctx *ctx, bl__outfile *o);

/* Gives up: closes and removes the temporary file (the target is untouched). Harmless on an
 * outfile that holds nothing ({0} or after commit/abort). */
void bl__outfile_abort(bl__outfile *o);

#endif
