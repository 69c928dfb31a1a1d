/* The decompressed cache of the "idx" dataset plugin (plugins/datasets/cache.h): an entry is
 * written on the first open of a large gzip file and used on the next; a source that changed
 * (size, time, or rewritten in place with its time set back), a damaged or truncated entry and
 * a cache that cannot be written all fall back to the source with the right data; two
 * processes creating the same entry at once both load the right data and leave one whole
 * entry; the location follows BATCHLAB_CACHE, XDG_CACHE_HOME and HOME. Also a gzip file of two
 * members (libdeflate inflates member after member).
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "testutil.h"

#define PLUGIN BATCHLAB_BUILD_PLUGIN_DIR "/bl_idx.so"
#define N 1400 /* 1400 images of 28×28: 1.1 MB inflated, above the 1 MiB the cache starts at */
#define SIDE 28
#define PX (SIDE * SIDE)

static unsigned char pixel(int i, int j, int version)
{
    return (unsigned char)((i * 7 + j + version * 13) % 251);
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* The images file of `version` gzipped at `level` ("0": stored, so two versions have the same
 * size), in `members` gzip members. */
static void write_images_gz(const char *path, int version, const char *level, int members)
{
    size_t n = 16 + (size_t)N * PX;
    unsigned char *b = malloc(n);
    assert_non_null(b);
    memcpy(b, "\0\0\x08\x03", 4);
    put_be32(b + 4, N);
    put_be32(b + 8, SIDE);
    put_be32(b + 12, SIDE);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < PX; j++)
            b[16 + (size_t)i * PX + j] = pixel(i, j, version);
    char mode[8];
    snprintf(mode, sizeof mode, "wb%s", level);
    FILE *out = fopen(path, "wb");
    assert_non_null(out);
    for (int m = 0; m < members; m++) {
        size_t from = n * (size_t)m / (size_t)members, to = n * (size_t)(m + 1) / (size_t)members;
        char part[1200];
        assert_true(snprintf(part, sizeof part, "%s.part", path) < (int)sizeof part);
        gzFile g = gzopen(part, mode);
        assert_non_null(g);
        assert_int_equal(gzwrite(g, b + from, (unsigned)(to - from)), (int)(to - from));
        assert_int_equal(gzclose(g), Z_OK);
        FILE *in = fopen(part, "rb");
        assert_non_null(in);
        int c;
        while ((c = fgetc(in)) != EOF)
            fputc(c, out);
        fclose(in);
        unlink(part);
    }
    assert_int_equal(fclose(out), 0);
    free(b);
}

static void write_labels_gz(const char *dir)
{
    unsigned char b[8 + N];
    memcpy(b, "\0\0\x08\x01", 4);
    put_be32(b + 4, N);
    for (int i = 0; i < N; i++)
        b[8 + i] = (unsigned char)(i % 10);
    char path[1200];
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
    gzFile g = gzopen(path, "wb6");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, b, sizeof b), (int)sizeof b);
    assert_int_equal(gzclose(g), Z_OK);
}

/* ---- fixture ------------------------------------------------------------------------------- */

typedef struct fx {
    bl_ctx *ctx;
    bl_registry *reg;
    const bl_plugin *plugin;
    char root[1024];   /* everything of one test */
    char data[1100];   /* the data directory */
    char images[1200]; /* its images file */
    char cache[1100];  /* BATCHLAB_CACHE */
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f || bl_test_load_plugin(PLUGIN, BL_PLUGIN_DATASET, &f->ctx, &f->reg, &f->plugin) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    if (f->root[0])
        bl_test_rmdir(f->root);
    unsetenv("BATCHLAB_CACHE");
    bl_registry_free(f->reg);
    bl_ctx_free(f->ctx);
    free(f);
    return 0;
}

/* A fresh folder with data/ (version 1, one gzip member) and BATCHLAB_CACHE = cache/. */
static void make(fx *f, const char *name)
{
    snprintf(f->root, sizeof f->root, "%s", bl_test_tmpdir(name));
    snprintf(f->data, sizeof f->data, "%s/data", f->root);
    snprintf(f->images, sizeof f->images, "%s/train-images-idx3-ubyte.gz", f->data);
    snprintf(f->cache, sizeof f->cache, "%s/cache", f->root);
    assert_int_equal(mkdir(f->data, 0755), 0);
    write_images_gz(f->images, 1, "1", 1);
    write_labels_gz(f->data);
    assert_int_equal(setenv("BATCHLAB_CACHE", f->cache, 1), 0);
}

/* Opens the data and checks that images 0, 1 and N-1 hold `version`; 0 when they do (usable in a
 * child process: nothing here asserts). */
static int load(bl_ctx *ctx, const bl_plugin *plugin, const char *dir, int version)
{
    bl_config *cfg = NULL;
    bl_dataset *ds = NULL;
    int bad = 1;
    if (bl_config_new(ctx, &cfg) != BL_OK || bl_config_set_string(ctx, cfg, "dir", dir) != BL_OK ||
        bl_config_set_string(ctx, cfg, "normalize", "none") != BL_OK ||
        bl_dataset_open(ctx, plugin, cfg, &ds) != BL_OK)
        goto out;
    int64_t idx[3] = {0, 1, N - 1};
    float *x = malloc(3 * PX * sizeof *x);
    int32_t y[3];
    if (x && bl_dataset_gather(ctx, ds, BL_SPLIT_TRAIN, idx, 3, x, y) == BL_OK) {
        bad = 0;
        for (int k = 0; k < 3; k++)
            for (int j = 0; j < PX; j++)
                if (x[k * PX + j] != (float)pixel((int)idx[k], j, version))
                    bad = 1;
        for (int k = 0; k < 3; k++)
            if (y[k] != (int32_t)(idx[k] % 10))
                bad = 1;
    }
    free(x);
out:
    bl_dataset_close(ds);
    bl_config_free(cfg);
    return bad;
}

static void expect_load(fx *f, int version)
{
    if (load(f->ctx, f->plugin, f->data, version) != 0)
        fail_msg("the data of version %d did not load: %s", version, bl_errmsg(f->ctx));
}

/* The entries of the images file in <cache>/inflated (path into buf) and temporary files. */
static int entries(const char *cache, char *buf, size_t cap, int *temps)
{
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/inflated", cache);
    int n = 0;
    *temps = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, ".tmp."))
            (*temps)++;
        else if (strncmp(e->d_name, "train-images-idx3-ubyte.gz-", 27) == 0) {
            n++;
            if ((size_t)snprintf(buf, cap, "%.1200s/%.255s", dir, e->d_name) >= cap)
                n = 1000; /* never: the caller's buffer holds both */
        }
    }
    closedir(d);
    return n;
}

/* The path of the one entry (asserted), with no temporary file left. */
static void the_entry(fx *f, char *buf, size_t cap)
{
    int temps;
    assert_int_equal(entries(f->cache, buf, cap, &temps), 1);
    assert_int_equal(temps, 0);
}

static ino_t inode(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_ino;
}

/* ---- tests --------------------------------------------------------------------------------- */

/* The first open writes the entry (inflated size + header + path); the second uses it: the
 * entry is not written again (a rewrite renames a new file over it: a new inode). */
static void written_then_used(void **state)
{
    fx *f = *state;
    make(f, "idxc_used");
    expect_load(f, 1);
    char entry[1600];
    the_entry(f, entry, sizeof entry);
    struct stat st;
    assert_int_equal(stat(entry, &st), 0);
    assert_true(st.st_size > 16 + N * PX);
    assert_int_equal(st.st_mode & 0777, 0600);
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/inflated", f->cache);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    ino_t first = inode(entry);
    expect_load(f, 1);
    expect_load(f, 1);
    assert_true(inode(entry) == first);
    /* the labels (under 1 MiB inflated) get no entry: the folder holds one file */
    DIR *d = opendir(dir);
    assert_non_null(d);
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        files += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(files, 1);
}

/* A changed source is read again and its entry rebuilt: new contents of another size; the
 * same bytes with a new modification time; new contents of the same size written in place
 * with the old modification time put back (only the change time tells). */
static void stale_source_rebuilds(void **state)
{
    fx *f = *state;
    make(f, "idxc_stale");
    expect_load(f, 1);
    char entry[1600];
    the_entry(f, entry, sizeof entry);

    write_images_gz(f->images, 2, "9", 1); /* another size */
    expect_load(f, 2);
    the_entry(f, entry, sizeof entry);
    ino_t before = inode(entry);
    expect_load(f, 2);
    assert_true(inode(entry) == before); /* the rebuilt entry is used */

    struct timespec times[2] = {{0, UTIME_OMIT}, {1000000000, 0}}; /* only the mtime */
    assert_int_equal(utimensat(AT_FDCWD, f->images, times, 0), 0);
    expect_load(f, 2);
    the_entry(f, entry, sizeof entry);
    assert_true(inode(entry) != before);

    /* stored gzip: versions 3 and 4 have the same size */
    write_images_gz(f->images, 3, "0", 1);
    expect_load(f, 3);
    struct stat st3;
    assert_int_equal(stat(f->images, &st3), 0);
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s/v4.gz", f->root);
    write_images_gz(tmp, 4, "0", 1);
    struct stat st4;
    assert_int_equal(stat(tmp, &st4), 0);
    assert_int_equal(st4.st_size, st3.st_size);
    FILE *in = fopen(tmp, "rb"), *out = fopen(f->images, "r+b"); /* in place: same inode */
    assert_true(in && out);
    int c;
    while ((c = fgetc(in)) != EOF)
        fputc(c, out);
    fclose(in);
    assert_int_equal(fclose(out), 0);
    struct timespec back[2] = {{0, UTIME_OMIT}, st3.st_mtim};
    assert_int_equal(utimensat(AT_FDCWD, f->images, back, 0), 0);
    struct stat now;
    assert_int_equal(stat(f->images, &now), 0);
    assert_true(now.st_ino == st3.st_ino && now.st_size == st3.st_size &&
                now.st_mtim.tv_sec == st3.st_mtim.tv_sec &&
                now.st_mtim.tv_nsec == st3.st_mtim.tv_nsec);
    expect_load(f, 4);
}

static void flip_byte(const char *path, long from_end)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, (long)st.st_size - from_end, SEEK_SET), 0);
    int c = fgetc(fp);
    assert_int_equal(fseek(fp, (long)st.st_size - from_end, SEEK_SET), 0);
    fputc(c ^ 0x20, fp);
    assert_int_equal(fclose(fp), 0);
}

/* A damaged entry (one pixel of the last image changed; cut short; a damaged header) is not
 * used: the data comes from the source and the entry is written again. */
static void damaged_entry_rebuilt(void **state)
{
    fx *f = *state;
    make(f, "idxc_damaged");
    expect_load(f, 1);
    char entry[1600];
    the_entry(f, entry, sizeof entry);

    flip_byte(entry, 1); /* the last pixel of image N-1, which load() checks */
    ino_t damaged = inode(entry);
    expect_load(f, 1);
    the_entry(f, entry, sizeof entry);
    assert_true(inode(entry) != damaged);
    ino_t good = inode(entry);
    expect_load(f, 1);
    assert_true(inode(entry) == good);

    struct stat st;
    assert_int_equal(stat(entry, &st), 0);
    assert_int_equal(truncate(entry, st.st_size - 100), 0);
    expect_load(f, 1);
    the_entry(f, entry, sizeof entry);
    assert_int_equal(stat(entry, &st), 0);
    assert_true(inode(entry) != good);

    FILE *fp = fopen(entry, "r+b"); /* the magic */
    assert_non_null(fp);
    fputc('X', fp);
    assert_int_equal(fclose(fp), 0);
    good = inode(entry);
    expect_load(f, 1);
    the_entry(f, entry, sizeof entry);
    assert_true(inode(entry) != good);
}

/* Processes creating the same entry at once: each loads the right data, and one whole entry
 * is left (the next open uses it), with no temporary file. */
static void concurrent_creation(void **state)
{
    fx *f = *state;
    make(f, "idxc_race");
    enum { KIDS = 3, ROUNDS = 4 };
    for (int round = 0; round < ROUNDS; round++) {
        int go[2];
        assert_int_equal(pipe(go), 0);
        pid_t kid[KIDS];
        for (int k = 0; k < KIDS; k++) {
            kid[k] = fork();
            assert_true(kid[k] >= 0);
            if (kid[k] == 0) {
                close(go[1]);
                char c;
                if (read(go[0], &c, 1) != 0) /* every child starts when the pipe closes */
                    _exit(3);
                bl_ctx *ctx = bl_ctx_new();
                _exit(ctx && load(ctx, f->plugin, f->data, 1) == 0 ? 0 : 1);
            }
        }
        close(go[0]);
        close(go[1]);
        for (int k = 0; k < KIDS; k++) {
            int status = 0;
            assert_int_equal(waitpid(kid[k], &status, 0), kid[k]);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("round %d: child %d loaded wrong data or failed (status %d)", round, k,
                         status);
        }
        char entry[1600];
        the_entry(f, entry, sizeof entry);
        ino_t made = inode(entry);
        expect_load(f, 1);
        assert_true(inode(entry) == made);
        assert_int_equal(unlink(entry), 0);
    }
}

/* A cache that cannot be written (its folder would be inside a regular file; a read-only
 * folder when not root) or is turned off: the data loads from the source every time. */
static void unwritable_falls_back(void **state)
{
    fx *f = *state;
    make(f, "idxc_unwritable");
    char file[1200];
    snprintf(file, sizeof file, "%s/plain-file", f->root);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    char under[1300];
    snprintf(under, sizeof under, "%s/cache", file);
    assert_int_equal(setenv("BATCHLAB_CACHE", under, 1), 0);
    expect_load(f, 1);
    expect_load(f, 1);

    if (geteuid() != 0) {
        assert_int_equal(mkdir(f->cache, 0500), 0);
        assert_int_equal(setenv("BATCHLAB_CACHE", f->cache, 1), 0);
        expect_load(f, 1);
        int temps;
        char entry[1600];
        assert_int_equal(entries(f->cache, entry, sizeof entry, &temps), 0);
        chmod(f->cache, 0700);
    }

    assert_int_equal(setenv("BATCHLAB_CACHE", "off", 1), 0);
    expect_load(f, 1);
    assert_int_equal(setenv("BATCHLAB_CACHE", "", 1), 0);
    expect_load(f, 1);
    struct stat st;
    assert_int_not_equal(stat("off/inflated", &st), 0);
}

/* Without BATCHLAB_CACHE: $XDG_CACHE_HOME/batchlab, else $HOME/.cache/batchlab (made 0700);
 * neither set (or relative): no cache. */
static void default_locations(void **state)
{
    fx *f = *state;
    make(f, "idxc_where");
    unsetenv("BATCHLAB_CACHE");
    char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    char *old_xdg = getenv("XDG_CACHE_HOME") ? strdup(getenv("XDG_CACHE_HOME")) : NULL;
    char xdg[1200], home[1200], want[1300], entry[1400];
    int temps;
    snprintf(xdg, sizeof xdg, "%s/xdg", f->root);
    snprintf(home, sizeof home, "%s/home", f->root);
    assert_int_equal(mkdir(home, 0755), 0);
    setenv("XDG_CACHE_HOME", xdg, 1);
    setenv("HOME", home, 1);
    expect_load(f, 1);
    snprintf(want, sizeof want, "%s/batchlab", xdg);
    assert_int_equal(entries(want, entry, sizeof entry, &temps), 1);

    unsetenv("XDG_CACHE_HOME");
    expect_load(f, 1);
    snprintf(want, sizeof want, "%s/.cache/batchlab", home);
    assert_int_equal(entries(want, entry, sizeof entry, &temps), 1);
    snprintf(want, sizeof want, "%s/.cache", home);
    struct stat st;
    assert_int_equal(stat(want, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    setenv("XDG_CACHE_HOME", "relative", 1);
    unsetenv("HOME");
    expect_load(f, 1);
    assert_int_not_equal(stat("relative", &st), 0);

    if (old_home)
        setenv("HOME", old_home, 1);
    if (old_xdg)
        setenv("XDG_CACHE_HOME", old_xdg, 1);
    else
        unsetenv("XDG_CACHE_HOME");
    free(old_home);
    free(old_xdg);
}

/* A gzip file of several members loads whole (libdeflate goes member by member; zlib reads
 * them as one stream) and is cached like any other. */
static void several_members(void **state)
{
    fx *f = *state;
    make(f, "idxc_members");
    write_images_gz(f->images, 5, "6", 3);
    expect_load(f, 5);
    char entry[1600];
    the_entry(f, entry, sizeof entry);
    assert_int_equal(setenv("BATCHLAB_CACHE", "off", 1), 0);
    expect_load(f, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(written_then_used, setup, teardown),
        cmocka_unit_test_setup_teardown(stale_source_rebuilds, setup, teardown),
        cmocka_unit_test_setup_teardown(damaged_entry_rebuilt, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_creation, setup, teardown),
        cmocka_unit_test_setup_teardown(unwritable_falls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(default_locations, setup, teardown),
        cmocka_unit_test_setup_teardown(several_members, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
