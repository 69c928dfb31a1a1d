/* The plugin registry: the search path, scanning directories, finding plugins by kind and name
 * (see batchlab/plugin.h). Loading and checking one file is plugin_loader.c's job. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "batchlab/device_backend.h"
#include "batchlab/plugin.h"
#include "base/grow.h"
#include "base/paths.h"
#include "plugin/plugin_internal.h"

typedef struct reg_entry {
    const bl_plugin *plugin;
    bl__plugin_lib *lib;
} reg_entry;

/* A file seen by a scan (loaded or refused), so that a second scan skips it quietly. */
typedef struct seen_file {
    dev_t dev;
    ino_t ino;
} seen_file;

struct bl_registry {
    char **dirs;              /* [n_dirs] the search path */
    size_t n_dirs, cap_dirs;
    bl__plugin_lib **libs;    /* [n_libs] libraries loaded, one reference each */
    size_t n_libs, cap_libs;
    reg_entry *entries;       /* [n] plugins in load order, one per (kind, name) */
    size_t n, cap_entries;
    seen_file *seen;          /* [n_seen] */
    size_t n_seen, cap_seen;
    bool scanned;
};


static char *dup_range(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Appends a directory (without trailing '/') unless it is already on the path. */
static int add_dir(bl_registry *reg, const char *dir, size_t len)
{
    while (len > 1 && dir[len - 1] == '/')
        len--;
    if (len == 0)
        return BL_OK;
    for (size_t i = 0; i < reg->n_dirs; i++)
        if (strlen(reg->dirs[i]) == len && memcmp(reg->dirs[i], dir, len) == 0)
            return BL_OK;
    char *copy = dup_range(dir, len);
    char **dirs =
        copy ? bl__grow(reg->dirs, &reg->cap_dirs, reg->n_dirs + 1, sizeof *dirs) : NULL;
    if (!dirs) {
        free(copy);
        return BL_ENOMEM;
    }
    reg->dirs = dirs;
    reg->dirs[reg->n_dirs++] = copy;
    return BL_OK;
}

int bl_registry_new(bl_ctx *ctx, bl_registry **out)
{
    if (!out)
        return bl_error(ctx, BL_EINVAL, "bl_registry_new: out is NULL");
    bl_registry *reg = calloc(1, sizeof *reg);
    if (!reg)
        return bl_error(ctx, BL_ENOMEM, "out of memory creating the plugin registry");
    int rc = BL_OK;
    const char *env = getenv("BATCHLAB_PLUGIN_PATH");
    while (env && *env && rc == BL_OK) {
        const char *colon = strchr(env, ':');
        size_t len = colon ? (size_t)(colon - env) : strlen(env);
        rc = add_dir(reg, env, len);
        env = colon ? colon + 1 : NULL;
    }
    /* Then this libbatchlab's own plugin folder: the install's, or the build tree's when the
     * library runs from there (base/paths.c). */
    const char *own = bl__plugin_dir();
    if (rc == BL_OK)
        rc = add_dir(reg, own, strlen(own));
    if (rc) {
        bl_registry_free(reg);
        return bl_error(ctx, BL_ENOMEM, "out of memory creating the plugin registry");
    }
    *out = reg;
    return BL_OK;
}

void bl_registry_free(bl_registry *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n_libs; i++)
        bl__plugin_lib_release(reg->libs[i]);
    for (size_t i = 0; i < reg->n_dirs; i++)
        free(reg->dirs[i]);
    free(reg->dirs);
    free(reg->libs);
    free(reg->entries);
    free(reg->seen);
    free(reg);
}

size_t bl_registry_search_path(const bl_registry *reg, const char ***dirs)
{
    if (dirs)
        *dirs = reg ? (const char **)reg->dirs : NULL;
    return reg ? reg->n_dirs : 0;
}

/* "a, b, c" of the search path into buf. */
static const char *path_list(const bl_registry *reg, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < reg->n_dirs && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", reg->dirs[i]);
    if (reg->n_dirs == 0)
        snprintf(buf, cap, "(empty)");
    return buf;
}

/* ---- loading -------------------------------------------------------------------------------- */

/* Adds the plugins of a newly loaded library, keeping the first of each (kind, name). */
static int add_lib(bl_ctx *ctx, bl_registry *reg, bl__plugin_lib *lib)
{
    bl__plugin_lib **libs = bl__grow(reg->libs, &reg->cap_libs, reg->n_libs + 1, sizeof *libs);
    if (libs)
        reg->libs = libs;
    reg_entry *entries = libs ? bl__grow(reg->entries, &reg->cap_entries,
                                         reg->n + bl__plugin_lib_count(lib), sizeof *entries)
                              : NULL;
    if (!entries) {
        bl_error(ctx, BL_ENOMEM, "out of memory loading plugin file '%s'",
                 bl__plugin_lib_path(lib));
        bl__plugin_lib_release(lib);
        return BL_ENOMEM;
    }
    reg->entries = entries;
    reg->libs[reg->n_libs++] = lib;
    for (size_t i = 0; i < bl__plugin_lib_count(lib); i++) {
        const bl_plugin *p = bl__plugin_lib_at(lib, i);
        const reg_entry *first = NULL;
        for (size_t k = 0; k < reg->n && !first; k++)
            if (reg->entries[k].plugin->kind == p->kind &&
                strcmp(reg->entries[k].plugin->name, p->name) == 0)
                first = &reg->entries[k];
        if (first) {
            bl_log(ctx, BL_LOG_WARN,
                   "two %s plugins named '%s': using the one in '%s', ignoring the one in '%s'",
                   bl_plugin_kind_name(p->kind), p->name, bl__plugin_lib_path(first->lib),
                   bl__plugin_lib_path(lib));
            continue;
        }
        reg->entries[reg->n].plugin = p;
        reg->entries[reg->n].lib = lib;
        reg->n++;
    }
    return BL_OK;
}

/* Loads the file at `path` (which exists) into the registry; *lib_out (may be NULL) receives
 * its library, also when it was loaded before. */
static int load_file(bl_ctx *ctx, bl_registry *reg, const char *path, bl__plugin_lib **lib_out)
{
    bl__plugin_lib *lib;
    int rc = bl__plugin_lib_open(ctx, path, &lib);
    if (rc)
        return rc;
    if (lib_out)
        *lib_out = lib;
    for (size_t i = 0; i < reg->n_libs; i++) {
        if (reg->libs[i] == lib) {
            bl__plugin_lib_release(lib); /* this registry already holds it */
            return BL_OK;
        }
    }
    return add_lib(ctx, reg, lib);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Resolves what bl_registry_load was given: a path as is, or a bare file name ("bl_mlp.so")
 * looked up on the search path. */
static int resolve(bl_ctx *ctx, const bl_registry *reg, const char *name, char *buf,
                   size_t cap)
{
    char dirs[2048];
    if (strchr(name, '/')) {
        if (is_file(name)) {
            snprintf(buf, cap, "%s", name);
            return BL_OK;
        }
        return bl_error(ctx, BL_ENOTFOUND,
                        "plugin file '%s' not found; check the path (a bare file name is looked "
                        "up in the plugin search path: %s)",
                        name, path_list(reg, dirs, sizeof dirs));
    }
    for (size_t i = 0; i < reg->n_dirs; i++) {
        snprintf(buf, cap, "%s/%s", reg->dirs[i], name);
        if (is_file(buf))
            return BL_OK;
    }
    if (is_file(name)) {
        snprintf(buf, cap, "./%s", name);
        return BL_OK;
    }
    return bl_error(ctx, BL_ENOTFOUND,
                    "plugin file '%s' not found in the current directory or the plugin search "
                    "path (%s); give its path or add its directory to BATCHLAB_PLUGIN_PATH",
                    name, path_list(reg, dirs, sizeof dirs));
}

int bl_registry_load(bl_ctx *ctx, bl_registry *reg, const char *path)
{
    if (!reg || !path || !path[0])
        return bl_error(ctx, BL_EINVAL, "bl_registry_load: no registry or path");
    char resolved[4096];
    int rc = resolve(ctx, reg, path, resolved, sizeof resolved);
    return rc ? rc : load_file(ctx, reg, resolved, NULL);
}

/* ---- scanning ------------------------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Marks a file as seen; true when it was seen before. *oom is set when memory runs out. */
static bool seen_before(bl_registry *reg, const struct stat *st, bool *oom)
{
    for (size_t i = 0; i < reg->n_seen; i++)
        if (reg->seen[i].dev == st->st_dev && reg->seen[i].ino == st->st_ino)
            return true;
    seen_file *seen = bl__grow(reg->seen, &reg->cap_seen, reg->n_seen + 1, sizeof *seen);
    if (!seen) {
        *oom = true;
        return false;
    }
    reg->seen = seen;
    reg->seen[reg->n_seen].dev = st->st_dev;
    reg->seen[reg->n_seen].ino = st->st_ino;
    reg->n_seen++;
    return false;
}

/* The *.so file names of `dir`, sorted so that "first found" does not depend on readdir.
 * Device backends (libbatchlab-<name>.so, opened by bl_device_open) share the search path
 * and are not plugins: they are left out. */
static int list_dir(const char *dir, char ***names, size_t *count)
{
    *names = NULL;
    *count = 0;
    size_t cap = 0;
    DIR *d = opendir(dir);
    if (!d)
        return BL_OK; /* a missing directory on the path is normal */
    int rc = BL_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !ends_with(de->d_name, ".so") ||
            strncmp(de->d_name, BL_DEVICE_BACKEND_PREFIX, strlen(BL_DEVICE_BACKEND_PREFIX)) == 0)
            continue;
        char *copy = dup_range(de->d_name, strlen(de->d_name));
        char **grown = copy ? bl__grow(*names, &cap, *count + 1, sizeof *grown) : NULL;
        if (!grown) {
            free(copy);
            rc = BL_ENOMEM;
            break;
        }
        *names = grown;
        (*names)[(*count)++] = copy;
    }
    closedir(d);
    if (*count > 1)
        qsort(*names, *count, sizeof **names, cmp_str);
    return rc;
}

static int scan_dir(bl_ctx *ctx, bl_registry *reg, const char *dir)
{
    char **names;
    size_t count;
    int rc = list_dir(dir, &names, &count);
    for (size_t i = 0; i < count && rc == BL_OK; i++) {
        char path[4096];
        struct stat st;
        bool oom = false;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || seen_before(reg, &st, &oom)) {
            if (oom)
                rc = BL_ENOMEM;
            continue;
        }
        int lrc = load_file(ctx, reg, path, NULL);
        if (lrc == BL_ENOMEM) {
            rc = lrc;
        } else if (lrc) {
            bl_log(ctx, BL_LOG_WARN, "%s (file skipped)", bl_errmsg(ctx));
            bl_clear_error(ctx);
        }
    }
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    return rc;
}

int bl_registry_scan(bl_ctx *ctx, bl_registry *reg)
{
    if (!reg)
        return bl_error(ctx, BL_EINVAL, "bl_registry_scan: no registry");
    reg->scanned = true;
    for (size_t i = 0; i < reg->n_dirs; i++) {
        if (scan_dir(ctx, reg, reg->dirs[i]) == BL_ENOMEM)
            return bl_error(ctx, BL_ENOMEM, "out of memory scanning plugin directory '%s'",
                            reg->dirs[i]);
    }
    return BL_OK;
}

/* ---- finding -------------------------------------------------------------------------------- */

static bool looks_like_path(const char *name)
{
    return strchr(name, '/') || ends_with(name, ".so");
}

/* The first plugin of `kind` in a file given by path. */
static int find_in_file(bl_ctx *ctx, bl_registry *reg, bl_plugin_kind kind, const char *path,
                        const bl_plugin **out)
{
    char resolved[4096];
    bl__plugin_lib *lib = NULL;
    int rc = resolve(ctx, reg, path, resolved, sizeof resolved);
    if (rc == BL_OK)
        rc = load_file(ctx, reg, resolved, &lib);
    if (rc)
        return rc;
    char has[1024] = "";
    size_t len = 0;
    for (size_t i = 0; i < bl__plugin_lib_count(lib); i++) {
        const bl_plugin *p = bl__plugin_lib_at(lib, i);
        if (p->kind == kind) {
            *out = p; /* an explicit path wins over a plugin of the same name found earlier */
            return BL_OK;
        }
        if (len < sizeof has)
            len += (size_t)snprintf(has + len, sizeof has - len, "%s%s '%s'", len ? ", " : "",
                                    bl_plugin_kind_name(p->kind), p->name);
    }
    return bl_error(ctx, BL_ENOTFOUND, "plugin file '%s' provides no %s plugin (it provides: %s)",
                    resolved, bl_plugin_kind_name(kind), has);
}

int bl_registry_find(bl_ctx *ctx, bl_registry *reg, bl_plugin_kind kind, const char *name,
                     const bl_plugin **out)
{
    if (!reg || !name || !out)
        return bl_error(ctx, BL_EINVAL, "bl_registry_find: NULL argument");
    if (looks_like_path(name))
        return find_in_file(ctx, reg, kind, name, out);
    if (!reg->scanned) {
        int rc = bl_registry_scan(ctx, reg);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < reg->n; i++) {
        const bl_plugin *p = reg->entries[i].plugin;
        if (p->kind == kind && strcmp(p->name, name) == 0) {
            *out = p;
            return BL_OK;
        }
    }

    /* Not found: say what there is, the nearest name, and where we looked. */
    const char **names = malloc((reg->n ? reg->n : 1) * sizeof *names);
    if (!names)
        return bl_error(ctx, BL_ENOMEM, "no %s plugin named '%s'", bl_plugin_kind_name(kind),
                        name);
    size_t n = 0;
    char avail[1024] = "";
    size_t len = 0;
    for (size_t i = 0; i < reg->n; i++) {
        const bl_plugin *p = reg->entries[i].plugin;
        if (p->kind != kind)
            continue;
        names[n++] = p->name;
        if (len < sizeof avail)
            len += (size_t)snprintf(avail + len, sizeof avail - len, "%s%s", len ? ", " : "",
                                    p->name);
    }
    const char *near = bl_nearest_name(name, names, n);
    char suggestion[128] = "";
    if (near)
        snprintf(suggestion, sizeof suggestion, "; did you mean '%s'?", near);
    char dirs[2048];
    bl_error(ctx, BL_ENOTFOUND,
             "no %s plugin named '%s'%s available %ss: %s; searched: %s (add a directory with "
             "BATCHLAB_PLUGIN_PATH or give the plugin file's path)",
             bl_plugin_kind_name(kind), name, near ? suggestion : ";", bl_plugin_kind_name(kind),
             n ? avail : "none", path_list(reg, dirs, sizeof dirs));
    free(names);
    return BL_ENOTFOUND;
}

size_t bl_registry_count(const bl_registry *reg)
{
    return reg ? reg->n : 0;
}

const bl_plugin *bl_registry_at(const bl_registry *reg, size_t index, const char **file)
{
    if (!reg || index >= reg->n) {
        if (file)
            *file = NULL;
        return NULL;
    }
    if (file)
        *file = bl__plugin_lib_path(reg->entries[index].lib);
    return reg->entries[index].plugin;
}
