/* The decompressed-file cache of the dataset plugins: a plain copy of what a gzip file
 * inflates to, kept per user so that the next open reads it instead of inflating again.
 *
 * Where: $BATCHLAB_CACHE when set ("off" or "" turns the cache off), else
 * $XDG_CACHE_HOME/batchlab, else $HOME/.cache/batchlab; entries live in its "inflated" folder,
 * created 0700. Never beside the data: the data directory may be a system directory that is
 * writable only because the process runs as root, a read-only mount, or a folder shared with
 * other users whose files this process must not trust.
 *
 * An entry "<name>-<16 hex digits>" (the source's file name, a hash of its real path) holds a
 * header, the source's real path, zeros up to a multiple of 64 bytes, then the data. It is used only when the header matches the
 * source as opened now (real path, size, modification and change times to the nanosecond,
 * device and inode), the expected data length, and the CRC-32 of the data read back; anything
 * else (a stale, truncated or damaged entry, or another source with the same hash) is a miss,
 * and the caller inflates the source and writes the entry again.
 *
 * Writing is safe when processes race: each writes a temporary file of its own in the same
 * folder (mkstemp) and renames it over the entry, so a reader sees a whole entry or none.
 * Every failure to write (no home, a read-only or full disk) leaves the cache out silently:
 * it only costs the next open its time. Header-only for the same reason as common.h; a
 * source including it defines _XOPEN_SOURCE 700 (realpath) before any system header.
 */
#ifndef BATCHLAB_PLUGINS_DATASETS_CACHE_H
#define BATCHLAB_PLUGINS_DATASETS_CACHE_H

#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#ifdef BATCHLAB_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

#define BL_DS_CACHE_MAGIC "BLCACHE1"
#define BL_DS_CACHE_KEY 7    /* size, mtime s, mtime ns, ctime s, ctime ns, dev, ino */
#define BL_DS_CACHE_FIELDS 10 /* the key, then data length, CRC-32, path length */

/* CRC-32 (the gzip one) of n bytes; libdeflate's is several times faster than zlib's. */
static inline uint32_t bl_ds_crc32(const uint8_t *p, size_t n)
{
#ifdef BATCHLAB_HAVE_LIBDEFLATE
    return libdeflate_crc32(0, p, n);
#else
    uint32_t c = (uint32_t)crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = (uint32_t)crc32(c, p, k);
        p += k;
        n -= k;
    }
    return c;
#endif
}

/* Writes the cache folder (with "/inflated") into buf; returns 0 when there is no cache (turned
 * off, no home, or a name too long). */
static inline int bl_ds_cache_dir(char *buf, size_t cap)
{
    const char *env = getenv("BATCHLAB_CACHE");
    int n;
    if (env) {
        if (!*env || strcmp(env, "off") == 0)
            return 0;
        n = snprintf(buf, cap, "%s/inflated", env);
    } else {
        const char *xdg = getenv("XDG_CACHE_HOME");
        const char *home = getenv("HOME");
        if (xdg && xdg[0] == '/')
            n = snprintf(buf, cap, "%s/batchlab/inflated", xdg);
        else if (home && home[0] == '/')
            n = snprintf(buf, cap, "%s/.cache/batchlab/inflated", home);
        else
            return 0;
    }
    return n > 0 && (size_t)n < cap;
}

/* mkdir -p with mode 0700 for the folders it creates; 0 on success. */
static inline int bl_ds_mkdirs(char *path)
{
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        int r = mkdir(path, 0700);
        int e = errno;
        *p = c;
        if (r != 0 && e != EEXIST)
            return -1;
        if (c == '\0')
            break;
    }
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

/* One cache entry of a source file. */
typedef struct bl_ds_cache {
    char real[PATH_MAX];  /* the source's real path */
    char entry[PATH_MAX]; /* the entry's path */
    uint64_t key[BL_DS_CACHE_KEY]; /* the source's identity now */
} bl_ds_cache;

static inline void bl_ds_cache_stat_key(const struct stat *st, uint64_t key[BL_DS_CACHE_KEY])
{
    key[0] = (uint64_t)st->st_size;
    key[1] = (uint64_t)st->st_mtim.tv_sec;
    key[2] = (uint64_t)st->st_mtim.tv_nsec;
    key[3] = (uint64_t)st->st_ctim.tv_sec; /* catches a rewrite in place whose mtime was */
    key[4] = (uint64_t)st->st_ctim.tv_nsec; /* set back (touch -d, rsync -t): ctime cannot be */
    key[5] = (uint64_t)st->st_dev;
    key[6] = (uint64_t)st->st_ino;
}

/* Prepares the entry of the source `path`, opened as `fd`; returns 0 when there is no cache to
 * use (turned off, or the paths cannot be formed). */
static inline int bl_ds_cache_init(bl_ds_cache *c, const char *path, int fd)
{
    char dir[PATH_MAX];
    struct stat st;
    if (!bl_ds_cache_dir(dir, sizeof dir) || fstat(fd, &st) != 0 || !realpath(path, c->real))
        return 0;
    bl_ds_cache_stat_key(&st, c->key);
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a of the real path */
    for (const char *s = c->real; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    const char *base = strrchr(c->real, '/');
    base = base ? base + 1 : c->real;
    int n = snprintf(c->entry, sizeof c->entry, "%s/%.64s-%016llx", dir, base,
                     (unsigned long long)h);
    return n > 0 && (size_t)n < sizeof c->entry;
}

static inline int bl_ds_read_full(int fd, uint8_t *p, size_t n, off_t off)
{
    while (n > 0) {
        ssize_t r = pread(fd, p, n > (1u << 30) ? (1u << 30) : n, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

static inline int bl_ds_write_full(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Where an entry's data starts: after the magic, the fields and the path, rounded up to a cache
 * line (rows then sit in lines as they do in malloc'd memory). */
static inline size_t bl_ds_cache_top(size_t path_len)
{
    return (8 + BL_DS_CACHE_FIELDS * sizeof(uint64_t) + path_len + 63) / 64 * 64;
}

/* The entry's data when it is valid for the source and holds exactly `len` bytes that start
 * with head[0..head_n): a new buffer of len bytes (bl_alloc_large) the caller frees. NULL
 * on a miss. */
static inline uint8_t *bl_ds_cache_read(const bl_ds_cache *c, size_t len, const uint8_t *head,
                                        size_t head_n)
{
    int fd = open(c->entry, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return NULL;
    char magic[8];
    uint64_t f[BL_DS_CACHE_FIELDS];
    size_t plen = strlen(c->real);
    size_t top = bl_ds_cache_top(plen);
    struct stat st;
    char *rp = malloc(plen + 1);
    uint8_t *data = NULL;
    if (!rp || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size != top + (uint64_t)len ||
        bl_ds_read_full(fd, (uint8_t *)magic, sizeof magic, 0) != 0 ||
        memcmp(magic, BL_DS_CACHE_MAGIC, sizeof magic) != 0 ||
        bl_ds_read_full(fd, (uint8_t *)f, sizeof f, sizeof magic) != 0 ||
        memcmp(f, c->key, sizeof c->key) != 0 || f[BL_DS_CACHE_KEY] != len ||
        f[BL_DS_CACHE_KEY + 2] != plen ||
        bl_ds_read_full(fd, (uint8_t *)rp, plen, (off_t)(sizeof magic + sizeof f)) != 0 ||
        memcmp(rp, c->real, plen) != 0)
        goto miss;
    data = bl_alloc_large(len);
    if (!data || bl_ds_read_full(fd, data, len, (off_t)top) != 0 ||
        (head_n > 0 && (len < head_n || memcmp(data, head, head_n) != 0)) ||
        bl_ds_crc32(data, len) != (uint32_t)f[BL_DS_CACHE_KEY + 1])
        goto miss;
    free(rp);
    close(fd);
    return data;
miss:
    free(data);
    free(rp);
    close(fd);
    return NULL;
}

/* Writes the entry of the source (still open as `fd`) holding a[0..an) then b[0..bn), unless
 * the source changed since bl_ds_cache_init (then the data may not be what the key names).
 * Returns 0 when the entry was written, -1 when not (the cache is optional). */
static inline int bl_ds_cache_write(const bl_ds_cache *c, int fd, const uint8_t *a, size_t an,
                                    const uint8_t *b, size_t bn)
{
    struct stat st;
    uint64_t now[BL_DS_CACHE_KEY];
    if (fstat(fd, &st) != 0)
        return -1;
    bl_ds_cache_stat_key(&st, now);
    if (memcmp(now, c->key, sizeof now) != 0)
        return -1;
    char tmp[PATH_MAX + 16];
    int n = snprintf(tmp, sizeof tmp, "%s", c->entry);
    char *slash = strrchr(tmp, '/');
    if (n <= 0 || !slash)
        return -1;
    *slash = '\0';
    if (bl_ds_mkdirs(tmp) != 0)
        return -1;
    snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", c->entry);
    int out = mkstemp(tmp);
    if (out < 0)
        return -1;
    uint64_t f[BL_DS_CACHE_FIELDS];
    memcpy(f, c->key, sizeof c->key);
    f[BL_DS_CACHE_KEY] = an + bn;
    uint32_t crc = bl_ds_crc32(a, an);
#ifdef BATCHLAB_HAVE_LIBDEFLATE
    crc = libdeflate_crc32(crc, b, bn);
#else
    crc = (uint32_t)crc32_combine(crc, bl_ds_crc32(b, bn), (z_off_t)bn);
#endif
    f[BL_DS_CACHE_KEY + 1] = crc;
    f[BL_DS_CACHE_KEY + 2] = strlen(c->real);
    static const uint8_t zeros[64];
    size_t plen = strlen(c->real);
    size_t pad = bl_ds_cache_top(plen) - (8 + sizeof f + plen);
    int ok = bl_ds_write_full(out, (const uint8_t *)BL_DS_CACHE_MAGIC, 8) == 0 &&
             bl_ds_write_full(out, (const uint8_t *)f, sizeof f) == 0 &&
             bl_ds_write_full(out, (const uint8_t *)c->real, plen) == 0 &&
             bl_ds_write_full(out, zeros, pad) == 0 &&
             bl_ds_write_full(out, a, an) == 0 && bl_ds_write_full(out, b, bn) == 0;
    ok = close(out) == 0 && ok;
    if (!ok || rename(tmp, c->entry) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

#endif
