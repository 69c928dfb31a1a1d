/* Loading plugin shared objects: dlopen, the entry symbol, descriptor checks, and the
 * process-wide table of loaded libraries with their reference counts (see batchlab/plugin.h). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/dataset.h"
#include "batchlab/model.h"
#include "batchlab/plugin.h"
#include "batchlab/scheduler.h"
#include "batchlab/version.h"
#include "config/config_internal.h"
#include "plugin/plugin_internal.h"
#include "base/grow.h"

/* An entry function returning more descriptors than this is taken to be broken. */
#define MAX_DESCRIPTORS 256
#define MAX_NAME 63

struct bl__plugin_lib {
    char *path;                 /* as first opened, for messages and listings */
    void *handle;               /* from dlopen; closed when refs reaches 0 */
    long refs;                  /* registries + live objects */
    const bl_plugin **plugins;  /* [n], checked descriptors in entry order */
    size_t n, cap;
    bl__plugin_lib *next;
};

/* The process-wide table: every open library, guarded by `table_lock`. */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static bl__plugin_lib *table;

const char *bl_plugin_kind_name(uint32_t kind)
{
    switch (kind) {
    case BL_PLUGIN_MODEL: return "model";
    case BL_PLUGIN_DATASET: return "dataset";
    case BL_PLUGIN_SCHEDULER: return "scheduler";
    }
    return "unknown";
}

/* ---- descriptor checks ---------------------------------------------------------------------- */

/* What each kind's operation table must hold: its minimum size (up to the last required
 * field) and the required function pointers, as offsets. */
typedef struct ops_rule {
    const char *type_name;      /* "bl_model_ops" */
    size_t min_size;
    const char *last_required;  /* the field that min_size ends with */
    struct {
        const char *name;
        size_t offset;
    } required[5];
} ops_rule;

#define REQ(type, field) {#field, offsetof(type, field)}
#define END_OF(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

static const ops_rule *rule_for(uint32_t kind)
{
    static const ops_rule model = {
        "bl_model_ops", END_OF(bl_model_ops, build), "build", {REQ(bl_model_ops, build)}};
    static const ops_rule dataset = {"bl_dataset_ops",
                                     END_OF(bl_dataset_ops, gather),
                                     "gather",
                                     {REQ(bl_dataset_ops, open), REQ(bl_dataset_ops, close),
                                      REQ(bl_dataset_ops, info), REQ(bl_dataset_ops, gather)}};
    static const ops_rule scheduler = {
        "bl_scheduler_ops",
        END_OF(bl_scheduler_ops, next),
        "next",
        {REQ(bl_scheduler_ops, create), REQ(bl_scheduler_ops, destroy),
         REQ(bl_scheduler_ops, max_batch), REQ(bl_scheduler_ops, next)}};
    switch (kind) {
    case BL_PLUGIN_MODEL: return &model;
    case BL_PLUGIN_DATASET: return &dataset;
    case BL_PLUGIN_SCHEDULER: return &scheduler;
    }
    return NULL;
}

static bool valid_name(const char *name)
{
    size_t n = 0;
    for (const char *p = name; *p; p++, n++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    return n > 0 && n <= MAX_NAME;
}

int bl__plugin_check(bl_ctx *ctx, const bl_plugin *p, const char *file, uint32_t index)
{
    char where[512];
    if (file)
        snprintf(where, sizeof where, "plugin file '%s': ", file);
    else
        where[0] = '\0';
    const char *ver = bl_version();
    if (!p)
        return bl_error(ctx, BL_EINVAL, "%sno plugin descriptor (NULL)", where);

    if (p->abi != BL_PLUGIN_ABI)
        return bl_error(ctx, BL_EPLUGIN,
                        "%sdescriptor #%u was built for plugin ABI %u, but this batchlab (%s) "
                        "uses plugin ABI %d; rebuild the plugin against batchlab %s",
                        where, index, p->abi, ver, BL_PLUGIN_ABI, ver);
    size_t need = END_OF(bl_plugin, ops);
    if (p->size < need)
        return bl_error(ctx, BL_EPLUGIN,
                        "%sdescriptor #%u declares a size of %u bytes, but plugin ABI %d needs "
                        "at least %zu (every field up to 'ops'); set size = sizeof(bl_plugin) "
                        "and rebuild the plugin against batchlab %s",
                        where, index, p->size, BL_PLUGIN_ABI, need, ver);
    if (!p->name || !p->name[0])
        return bl_error(ctx, BL_EPLUGIN,
                        "%sdescriptor #%u has no name; give it a name of lower-case letters, "
                        "digits and '_'",
                        where, index);
    if (!valid_name(p->name))
        return bl_error(ctx, BL_EPLUGIN,
                        "%sdescriptor #%u has an invalid name '%.80s'; use only lower-case "
                        "letters, digits and '_' (at most %d characters)",
                        where, index, p->name, MAX_NAME);
    const ops_rule *rule = rule_for(p->kind);
    if (!rule)
        return bl_error(ctx, BL_EPLUGIN,
                        "%splugin '%s' has unknown kind %u; this batchlab (%s) knows %d (model), "
                        "%d (dataset) and %d (scheduler) — use one of those, or a newer batchlab "
                        "if the plugin needs another kind",
                        where, p->name, p->kind, ver, BL_PLUGIN_MODEL, BL_PLUGIN_DATASET,
                        BL_PLUGIN_SCHEDULER);
    const char *kind = bl_plugin_kind_name(p->kind);
    if (!p->ops)
        return bl_error(ctx, BL_EPLUGIN,
                        "%s%s plugin '%s' has no operations table (ops is NULL); point it at a "
                        "%s",
                        where, kind, p->name, rule->type_name);
    uint32_t ops_size = *(const uint32_t *)p->ops;
    if (ops_size < rule->min_size)
        return bl_error(ctx, BL_EPLUGIN,
                        "%s%s plugin '%s' has an operations table of %u bytes, but a %s needs at "
                        "least %zu (every field up to '%s'); set its size to sizeof(%s) and "
                        "rebuild the plugin against batchlab %s",
                        where, kind, p->name, ops_size, kind, rule->min_size,
                        rule->last_required, rule->type_name, ver);
    for (size_t i = 0; i < sizeof rule->required / sizeof rule->required[0]; i++) {
        if (!rule->required[i].name)
            break;
        void *fn;
        memcpy(&fn, (const char *)p->ops + rule->required[i].offset, sizeof fn);
        if (!fn)
            return bl_error(ctx, BL_EPLUGIN,
                            "%s%s plugin '%s' lacks the required operation '%s' (NULL in its "
                            "%s); implement it",
                            where, kind, p->name, rule->required[i].name, rule->type_name);
    }
    char owner[sizeof where + 96]; /* where + kind + name (≤ 63) */
    snprintf(owner, sizeof owner, "%s%s plugin '%s'", where, kind, p->name);
    return bl__option_decl_check(ctx, p->options, owner);
}

int bl__plugin_expect(bl_ctx *ctx, const bl_plugin *plugin, bl_plugin_kind kind)
{
    int rc = bl__plugin_check(ctx, plugin, NULL, 0);
    if (rc)
        return rc;
    if (plugin->kind != kind)
        return bl_error(ctx, BL_EINVAL, "plugin '%s' is a %s, not a %s", plugin->name,
                        bl_plugin_kind_name(plugin->kind), bl_plugin_kind_name(kind));
    return BL_OK;
}

int bl__plugin_failed(bl_ctx *ctx, int rc, const char *owner, const char *op)
{
    /* The code is decided here, not read back from ctx: a NULL ctx holds none, and a failure
     * must never come back as BL_OK. */
    int code = rc < 0 ? rc : BL_EPLUGIN;
    if (rc > 0 || bl_errcode(ctx) == BL_OK || bl_errmsg(ctx)[0] == '\0')
        bl_error(ctx, code, "the plugin's %s failed (returned %d) without saying why", op, rc);
    else
        code = bl_errcode(ctx); /* the plugin's own message and code */
    bl_error_prefix(ctx, "%s", owner);
    return code;
}

/* ---- opening a shared object ---------------------------------------------------------------- */

static void lib_free(bl__plugin_lib *lib)
{
    free(lib->plugins);
    free(lib->path);
    free(lib);
}

/* Calls the entry function and checks every descriptor; fills lib->plugins. */
static int read_descriptors(bl_ctx *ctx, bl__plugin_lib *lib, bl_plugin_entry_fn entry)
{
    const char *path = lib->path;
    for (uint32_t i = 0;; i++) {
        if (i == MAX_DESCRIPTORS)
            return bl_error(ctx, BL_EPLUGIN,
                            "plugin file '%s': %s() returned more than %d descriptors; it must "
                            "return NULL after the last one",
                            path, BL_PLUGIN_ENTRY, MAX_DESCRIPTORS);
        const bl_plugin *p = entry(i);
        if (!p)
            break;
        int rc = bl__plugin_check(ctx, p, path, i);
        if (rc)
            return rc;
        const bl_plugin **grown = bl__grow(lib->plugins, &lib->cap, lib->n + 1, sizeof *grown);
        if (!grown)
            return bl_error(ctx, BL_ENOMEM, "out of memory loading plugin file '%s'", path);
        lib->plugins = grown;
        lib->plugins[lib->n++] = p;
    }
    if (lib->n == 0)
        return bl_error(ctx, BL_EPLUGIN,
                        "plugin file '%s' provides no plugins (%s(0) returned NULL); return a "
                        "descriptor for index 0",
                        path, BL_PLUGIN_ENTRY);
    return BL_OK;
}

/* The open library with this dlopen handle, with one more reference for the caller; NULL
 * when there is none. The caller holds table_lock. */
static bl__plugin_lib *find_locked(void *handle)
{
    for (bl__plugin_lib *lib = table; lib; lib = lib->next) {
        if (lib->handle == handle) {
            lib->refs++;
            return lib;
        }
    }
    return NULL;
}

int bl__plugin_lib_open(bl_ctx *ctx, const char *path, bl__plugin_lib **out)
{
    if (!path || !out)
        return bl_error(ctx, BL_EINVAL, "bl__plugin_lib_open: NULL argument");
    /* dlopen searches the library path for names without '/'; a plugin file is a path. */
    char local[4096];
    const char *open_path = path;
    if (!strchr(path, '/')) {
        snprintf(local, sizeof local, "./%s", path);
        open_path = local;
    }
    /* dlopen runs the library's constructors: whether its file may be trusted is decided
     * before. */
    int perm = bl__plugin_check_permissions(ctx, open_path);
    if (perm != BL_OK)
        return perm;
    dlerror();
    void *handle = dlopen(open_path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        const char *soname = why ? strstr(why, "libbatchlab.so.") : NULL;
        unsigned long abi = soname ? strtoul(soname + strlen("libbatchlab.so."), NULL, 10) : 0;
        const char *ver = bl_version();
        if (soname && abi != BL_PLUGIN_ABI) {
            /* Built against another libbatchlab: its SOVERSION is that build's plugin ABI. */
            return bl_error(ctx, BL_EPLUGIN,
                            "plugin file '%s' could not be loaded: %s; it was built for plugin "
                            "ABI %lu (libbatchlab.so.%lu), but this batchlab (%s) uses plugin "
                            "ABI %d (libbatchlab.so.%d); rebuild the plugin against batchlab %s",
                            path, why, abi, abi, ver, BL_PLUGIN_ABI, BL_PLUGIN_ABI, ver);
        }
        if (why && strstr(why, "undefined symbol: bl_"))
            /* Within one ABI functions are only added: the plugin needs a newer batchlab. */
            return bl_error(ctx, BL_EPLUGIN,
                            "plugin file '%s' could not be loaded: %s; it calls a function this "
                            "batchlab (%s) does not have, so it was built against a newer one: "
                            "use that batchlab, or rebuild the plugin against batchlab %s",
                            path, why, ver, ver);
        return bl_error(ctx, BL_EPLUGIN,
                        "plugin file '%s' could not be loaded: %s; check that it is a shared "
                        "object built for this machine and that the libraries it needs are "
                        "installed (ldd '%s')",
                        path, why ? why : "unknown dlopen error", path);
    }

    pthread_mutex_lock(&table_lock);
    bl__plugin_lib *known = find_locked(handle);
    pthread_mutex_unlock(&table_lock);
    if (known) {
        dlclose(handle); /* the table's own dlopen reference stays */
        *out = known;
        return BL_OK;
    }

    bl__plugin_lib *lib = calloc(1, sizeof *lib);
    size_t len = strlen(path) + 1;
    char *copy = malloc(len);
    if (!lib || !copy) {
        free(lib);
        free(copy);
        dlclose(handle);
        return bl_error(ctx, BL_ENOMEM, "out of memory loading plugin file '%s'", path);
    }
    memcpy(copy, path, len);
    lib->path = copy;
    lib->handle = handle;
    lib->refs = 1;

    dlerror();
    void *sym = dlsym(handle, BL_PLUGIN_ENTRY);
    int rc;
    if (!sym) {
        rc = bl_error(ctx, BL_EPLUGIN,
                      "plugin file '%s' has no entry symbol '%s', so it is not a batchlab "
                      "plugin; a plugin exports 'BL_PLUGIN_EXPORT const bl_plugin *%s(uint32_t "
                      "index)' (see batchlab/plugin.h)",
                      path, BL_PLUGIN_ENTRY, BL_PLUGIN_ENTRY);
    } else {
        bl_plugin_entry_fn entry;
        memcpy(&entry, &sym, sizeof entry); /* object pointer → function pointer (POSIX) */
        rc = read_descriptors(ctx, lib, entry);
    }
    if (rc) {
        dlclose(handle);
        lib_free(lib);
        return rc;
    }

    /* Another thread may have opened the same file while this one read its descriptors
     * unlocked: look again under the lock, and insert only when it is still not there, so a
     * library is in the table once. */
    pthread_mutex_lock(&table_lock);
    known = find_locked(handle);
    if (!known) {
        lib->next = table;
        table = lib;
    }
    pthread_mutex_unlock(&table_lock);
    if (known) {
        lib_free(lib);
        dlclose(handle); /* the other thread's entry holds the table's reference */
        *out = known;
        return BL_OK;
    }
    *out = lib;
    return BL_OK;
}

size_t bl__plugin_lib_table_size(void)
{
    pthread_mutex_lock(&table_lock);
    size_t n = 0;
    for (const bl__plugin_lib *lib = table; lib; lib = lib->next)
        n++;
    pthread_mutex_unlock(&table_lock);
    return n;
}

long bl__plugin_lib_refs(const bl__plugin_lib *lib)
{
    pthread_mutex_lock(&table_lock);
    long refs = lib->refs;
    pthread_mutex_unlock(&table_lock);
    return refs;
}

/* Drops one reference; the caller holds table_lock. Returns the library to dlclose and free
 * when this was the last reference (unlinked from the table), else NULL. */
static bl__plugin_lib *unref_locked(bl__plugin_lib *lib)
{
    if (--lib->refs > 0)
        return NULL;
    for (bl__plugin_lib **p = &table; *p; p = &(*p)->next) {
        if (*p == lib) {
            *p = lib->next;
            break;
        }
    }
    return lib;
}

static void close_lib(bl__plugin_lib *lib)
{
    if (!lib)
        return;
    dlclose(lib->handle);
    lib_free(lib);
}

void bl__plugin_lib_release(bl__plugin_lib *lib)
{
    if (!lib)
        return;
    pthread_mutex_lock(&table_lock);
    bl__plugin_lib *dead = unref_locked(lib);
    pthread_mutex_unlock(&table_lock);
    close_lib(dead);
}

const char *bl__plugin_lib_path(const bl__plugin_lib *lib)
{
    return lib->path;
}

size_t bl__plugin_lib_count(const bl__plugin_lib *lib)
{
    return lib->n;
}

const bl_plugin *bl__plugin_lib_at(const bl__plugin_lib *lib, size_t index)
{
    return index < lib->n ? lib->plugins[index] : NULL;
}

/* ---- retain / release by descriptor --------------------------------------------------------- */

/* The library providing `plugin`, or NULL (a descriptor the loader did not load, e.g. one
 * compiled into the program: nothing to keep loaded). The caller holds table_lock. */
static bl__plugin_lib *owner_locked(const bl_plugin *plugin)
{
    for (bl__plugin_lib *lib = table; lib; lib = lib->next)
        for (size_t i = 0; i < lib->n; i++)
            if (lib->plugins[i] == plugin)
                return lib;
    return NULL;
}

void bl_plugin_retain(const bl_plugin *plugin)
{
    if (!plugin)
        return;
    pthread_mutex_lock(&table_lock);
    bl__plugin_lib *lib = owner_locked(plugin);
    if (lib)
        lib->refs++;
    pthread_mutex_unlock(&table_lock);
}

void bl_plugin_release(const bl_plugin *plugin)
{
    if (!plugin)
        return;
    pthread_mutex_lock(&table_lock);
    bl__plugin_lib *lib = owner_locked(plugin);
    bl__plugin_lib *dead = lib ? unref_locked(lib) : NULL;
    pthread_mutex_unlock(&table_lock);
    close_lib(dead);
}
