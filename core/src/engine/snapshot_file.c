/* Snapshot files (batchlab/snapshot.h): atomic writes that never replace anything but a
 * regular file, and reads that refuse anything but one. The image itself is snapshot.c's. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batchlab/snapshot.h"

/* ---- files --------------------------------------------------------------------------------- */

static const char *file_kind(mode_t m)
{
    return S_ISDIR(m) ? "a directory" : S_ISCHR(m) ? "a character device"
           : S_ISBLK(m) ? "a block device" : S_ISFIFO(m) ? "a FIFO"
           : S_ISSOCK(m) ? "a socket" : S_ISLNK(m) ? "a symbolic link" : "not a regular file";
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int bl_snapshot_write(bl_ctx *ctx, const bl_snapshot *snap, const char *path)
{
    size_t len = 0;
    const unsigned char *data = bl_snapshot_bytes(snap, &len);
    if (!data || !path || !*path || len == 0)
        return bl_error(ctx, BL_EINVAL, "bl_snapshot_write: NULL or empty argument");
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return bl_error(ctx, BL_EIO, "'%s' is %s: refusing to replace it with a snapshot", path,
                        file_kind(st.st_mode));
    size_t plen = strlen(path);
    size_t tcap = plen + 48;
    char *tmp = malloc(tcap);
    char *dir = malloc(plen + 2);
    if (!tmp || !dir) {
        free(tmp);
        free(dir);
        return bl_error(ctx, BL_ENOMEM, "out of memory");
    }
    memcpy(dir, path, plen + 1);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, plen + 2, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int rc = BL_OK;
    /* a new file of our own next to the target (mode 0666 less the umask, as any file) */
    int fd = -1;
    for (int attempt = 0; fd < 0 && attempt < 100; attempt++) {
        snprintf(tmp, tcap, "%s.tmp.%ld.%d", path, (long)getpid(), attempt);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        rc = bl_error(ctx, BL_EIO, "cannot create a temporary file next to '%s': %s", path,
                      strerror(errno));
    } else {
        if (write_all(fd, data, len) != 0 || fsync(fd) != 0)
            rc = bl_error(ctx, BL_EIO, "writing '%s': %s", tmp, strerror(errno));
        if (close(fd) != 0 && rc == BL_OK)
            rc = bl_error(ctx, BL_EIO, "writing '%s': %s", tmp, strerror(errno));
        /* checked again just before the rename: never rename over anything but a file */
        if (rc == BL_OK && lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
            rc = bl_error(ctx, BL_EIO, "'%s' is %s: refusing to replace it with a snapshot",
                          path, file_kind(st.st_mode));
        if (rc == BL_OK && rename(tmp, path) != 0)
            rc = bl_error(ctx, BL_EIO, "cannot write '%s': %s", path, strerror(errno));
        if (rc != BL_OK)
            unlink(tmp);
    }
    if (rc == BL_OK) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            if (fsync(dfd) != 0 && errno != EINVAL)
                rc = bl_error(ctx, BL_EIO, "syncing the directory of '%s': %s", path,
                              strerror(errno));
            close(dfd);
        }
    }
    free(tmp);
    free(dir);
    return rc;
}

int bl_snapshot_read(bl_ctx *ctx, const char *path, bl_snapshot **out)
{
    if (!path || !out)
        return bl_error(ctx, BL_EINVAL, "bl_snapshot_read: NULL argument");
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return bl_error(ctx, errno == ENOENT ? BL_ENOTFOUND : BL_EIO, "cannot open '%s': %s",
                        path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int rc = bl_error(ctx, BL_EIO, "'%s' is %s, not a snapshot file", path,
                          fstat(fd, &st) != 0 ? "unreadable" : file_kind(st.st_mode));
        close(fd);
        return rc;
    }
    size_t len = (size_t)st.st_size;
    unsigned char *data = malloc(len ? len : 1);
    if (!data) {
        close(fd);
        return bl_error(ctx, BL_ENOMEM, "'%s': out of memory for %zu bytes", path, len);
    }
    size_t got = 0;
    while (got < len) {
        ssize_t k = read(fd, data + got, len - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    int rc = bl_snapshot_from_bytes(ctx, data, got, path, out);
    free(data);
    return rc;
}
