/* Writing an output file whole or not at all, and never over a special file (outfile.h). */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* realpath */
#endif

#include "base/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void release(bl__outfile *o)
{
    free(o->path);
    free(o->tmp);
    o->path = o->tmp = NULL;
    o->f = NULL;
}

static char *copy_text(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c)
        memcpy(c, s, n);
    return c;
}

int bl__outfile_open(bl_ctx *ctx, const char *path, bl__outfile *o)
{
    o->f = NULL;
    o->path = o->tmp = NULL;
    if (!path || !*path)
        return bl_error(ctx, BL_EINVAL, "no output file name given");
    struct stat st;
    bool exists = stat(path, &st) == 0; /* follows a symbolic link: what it points at */
    if (exists && S_ISDIR(st.st_mode))
        return bl_error(ctx, BL_EIO, "cannot write '%s': it is a directory", path);
    if (exists && !S_ISREG(st.st_mode)) {
        /* A device, FIFO, terminal or socket: written in place, never renamed over. */
        int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
            return bl_error(ctx, BL_EIO, "cannot write '%s': %s", path, strerror(errno));
        o->f = fdopen(fd, "w");
        o->path = copy_text(path);
        if (!o->f || !o->path) {
            if (o->f)
                fclose(o->f);
            else
                close(fd);
            release(o);
            return bl_error(ctx, BL_ENOMEM, "out of memory opening '%s'", path);
        }
        return BL_OK;
    }
    /* A regular file (or none yet): a link to one is replaced at its target. */
    char *target = NULL;
    struct stat lst;
    if (exists && lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode))
        target = realpath(path, NULL);
    if (!target)
        target = copy_text(path);
    size_t cap = target ? strlen(target) + 48 : 0;
    char *tmp = target ? malloc(cap) : NULL;
    if (!tmp) {
        free(target);
        return bl_error(ctx, BL_ENOMEM, "out of memory opening '%s'", path);
    }
    int fd = -1;
    errno = 0;
    for (int attempt = 0; fd < 0 && attempt < 100; attempt++) {
        snprintf(tmp, cap, "%s.tmp.%ld.%d", target, (long)getpid(), attempt);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        int e = errno;
        free(target);
        free(tmp);
        return bl_error(ctx, BL_EIO, "cannot write '%s': cannot create a temporary file next "
                        "to it: %s", path, strerror(e));
    }
    o->f = fdopen(fd, "w");
    if (!o->f) {
        close(fd);
        unlink(tmp);
        free(target);
        free(tmp);
        return bl_error(ctx, BL_ENOMEM, "out of memory opening '%s'", path);
    }
    o->path = target;
    o->tmp = tmp;
    return BL_OK;
}

bool bl__outfile_in_place(const bl__outfile *o)
{
    return o->f && !o->tmp;
}

int bl__outfile_commit(bl_ctx *ctx, bl__outfile *o)
{
    if (!o->f)
        return bl_error(ctx, BL_EINVAL, "bl__outfile_commit: nothing open");
    int e = 0;
    if (ferror(o->f))
        e = errno ? errno : EIO;
    if (!e && fflush(o->f) != 0)
        e = errno;
    if (!e && o->tmp && fsync(fileno(o->f)) != 0)
        e = errno;
    if (fclose(o->f) != 0 && !e)
        e = errno;
    o->f = NULL;
    if (!e && o->tmp && rename(o->tmp, o->path) != 0)
        e = errno;
    if (e && o->tmp)
        unlink(o->tmp);
    int rc = BL_OK;
    if (e)
        rc = bl_error(ctx, BL_EIO, "cannot write '%s': %s", o->path, strerror(e));
    release(o);
    return rc;
}

void bl__outfile_abort(bl__outfile *o)
{
    if (o->f)
        fclose(o->f);
    if (o->tmp)
        unlink(o->tmp);
    release(o);
}
