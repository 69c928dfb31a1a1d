/* batchlab — the plugin ABI, and the registry that loads plugins.
 *
 * A plugin is a shared object exporting one C function, `batchlab_plugin`, that returns its
 * descriptors one index at a time (NULL ends the list). A shared object may provide several
 * plugins of any kinds. A plugin includes <batchlab/plugin_sdk.h> and nothing else of
 * batchlab, and never sees Lua: its options arrive as a validated bl_config.
 *
 *     static const bl_option opts[] = {
 *         {"hidden", BL_TYPE_INT_LIST, "256,128", "widths of the hidden layers"},
 *         {NULL, 0, NULL, NULL}};
 *     static const bl_model_ops ops = {sizeof ops, my_build};
 *     static const bl_plugin plugin = {BL_PLUGIN_ABI, sizeof(bl_plugin), BL_PLUGIN_MODEL,
 *                                      "mine", "1.0", "my model", opts, &ops};
 *     BL_PLUGIN_EXPORT const bl_plugin *batchlab_plugin(uint32_t i)
 *     { return i == 0 ? &plugin : NULL; }
 *
 * ABI rules (docs/plugins.md has the whole story):
 *   - BL_PLUGIN_ABI is bumped by every incompatible change, and libbatchlab's SOVERSION is
 *     the same number (libbatchlab.so.BL_PLUGIN_ABI); a plugin of another ABI is refused
 *     with a message naming the file, both ABI numbers and what to do.
 *   - Within one ABI, structs that cross the boundary only grow at the end, and each carries
 *     its size: the descriptor and the three operation tables (filled by the plugin, `size` =
 *     sizeof at the plugin's build), bl_data_info (the host sets `size`, the plugin fills the
 *     fields), bl_train_state and bl_layer (filled by the host). The reader of such a struct
 *     reads a field only when the writer's size says it is there (BL_HAS_FIELD). bl_eval_point
 *     is append-only too; its size travels as bl_train_state.point_size. Element types of
 *     arrays (bl_option, bl_shape, bl_param_info) keep their layout for the whole ABI.
 *   - Within one ABI, exported functions are only added, never removed or changed.
 *
 * Lifecycle rules: every object a host creates from a plugin (a dataset handle, a scheduler
 * handle, a network whose layers came from a model plugin) keeps the shared object loaded;
 * the host destroys each such object exactly once, with the plugin's own destroy/close; the
 * shared object is unloaded only after the registry is freed and its last object is gone.
 */
#ifndef BATCHLAB_PLUGIN_H
#define BATCHLAB_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "batchlab/abi.h"
#include "batchlab/config.h"
#include "batchlab/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped by every incompatible change (a field changed or moved, a function removed or changed);
 * a plugin of another ABI is refused. libbatchlab's SOVERSION equals it. History: 1 — first
 * release; 2 — size fields in bl_train_state, bl_data_info and bl_layer, the descriptor's kind
 * a uint32_t, bl_train_state.point_size. */
#define BL_PLUGIN_ABI 2

#define BL_PLUGIN_ENTRY "batchlab_plugin"

#if defined(__GNUC__)
#define BL_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define BL_PLUGIN_EXPORT
#endif

/* The kinds of plugin. The descriptor stores the kind as a uint32_t (an enum's width is the
 * compiler's choice); kinds are only ever added. */
typedef enum {
    BL_PLUGIN_MODEL = 1,     /* ops: bl_model_ops (model.h) */
    BL_PLUGIN_DATASET = 2,   /* ops: bl_dataset_ops (dataset.h) */
    BL_PLUGIN_SCHEDULER = 3  /* ops: bl_scheduler_ops (scheduler.h) */
} bl_plugin_kind;

/* "model", "dataset", "scheduler" (or "unknown" for any other value). */
BL_EXPORT const char *bl_plugin_kind_name(uint32_t kind);

typedef struct bl_plugin {
    uint32_t abi;             /* BL_PLUGIN_ABI the plugin was built with */
    uint32_t size;            /* sizeof(bl_plugin) at build time */
    uint32_t kind;            /* a bl_plugin_kind */
    const char *name;         /* [a-z0-9_]+, unique per kind */
    const char *version;      /* the plugin's own version, e.g. "1.0" */
    const char *summary;      /* one line */
    const bl_option *options; /* declared options, NULL-name terminated; NULL = none */
    const void *ops;          /* the kind's operation table; its first field is its size */
} bl_plugin;

typedef const bl_plugin *(*bl_plugin_entry_fn)(uint32_t index);

/* ---- the registry (host side) -------------------------------------------------------------- */

typedef struct bl_registry bl_registry;

/* A registry with nothing loaded. On success *out is freed with bl_registry_free. */
BL_EXPORT int bl_registry_new(bl_ctx *ctx, bl_registry **out);

/* Drops the registry. Shared objects with live objects stay loaded until those are freed. */
BL_EXPORT void bl_registry_free(bl_registry *reg);

/* The directories searched, in order: each directory of BATCHLAB_PLUGIN_PATH (':'-separated),
 * the build tree's plugin directory, the install prefix's plugin directory. */
BL_EXPORT size_t bl_registry_search_path(const bl_registry *reg, const char ***dirs);

/* Loads every plugin file (*.so) of every directory on the search path. A file that fails to
 * load is reported through bl_log as a warning (with the reason) and skipped; the call
 * succeeds unless memory runs out. When two plugins of one kind share a name, the one found
 * first wins and a warning names both files. Safe to call again (files already loaded are
 * skipped). */
BL_EXPORT int bl_registry_scan(bl_ctx *ctx, bl_registry *reg);

/* Loads one shared object by path (a bare file name, "bl_mlp.so", is looked up in the current
 * directory after the search path). Errors name the file and say what to do: not found,
 * dlopen failure (with dlerror), no entry symbol, ABI mismatch (both numbers), descriptor too
 * short, unknown kind, missing name or ops. Before dlopen (which runs the library's
 * constructors) a file that others could have written is refused (BL_EPLUGIN, naming it and
 * the fix, chmod go-w): the file or its directory writable by group or others (a sticky 1777
 * directory included), or a directory further up writable by others without the sticky bit
 * (docs/reliability.md, "Plugin loading"). */
BL_EXPORT int bl_registry_load(bl_ctx *ctx, bl_registry *reg, const char *path);

/* Finds a plugin of `kind` by name, scanning the search path first if bl_registry_scan was
 * never called on `reg`. `name` may also be a path to a shared object ("./x.so"), which is
 * loaded first; its first plugin of `kind` is returned even when a plugin of the same name was
 * found earlier. BL_ENOTFOUND lists the names of that kind that are available and the search
 * path. On success *out stays valid while the registry lives. */
BL_EXPORT int bl_registry_find(bl_ctx *ctx, bl_registry *reg, bl_plugin_kind kind,
                               const char *name, const bl_plugin **out);

/* Iteration over the loaded plugins in load order; `file` (may be NULL) receives the path of
 * the shared object that provides it. */
BL_EXPORT size_t bl_registry_count(const bl_registry *reg);
BL_EXPORT const bl_plugin *bl_registry_at(const bl_registry *reg, size_t index,
                                          const char **file);

/* Keeps the shared object providing `plugin` loaded until a matching release. The host's
 * object wrappers (bl_model_build, bl_dataset_open, bl_scheduler_open) do this themselves. */
BL_EXPORT void bl_plugin_retain(const bl_plugin *plugin);
BL_EXPORT void bl_plugin_release(const bl_plugin *plugin);

#ifdef __cplusplus
}
#endif
#endif
