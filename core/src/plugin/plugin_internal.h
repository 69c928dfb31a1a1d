/* Internal: loaded plugin libraries (plugin_loader.c), shared by the registry and the host-side
 * object wrappers (dataset.c, model.c, scheduler.c). */
#ifndef BATCHLAB_PLUGIN_INTERNAL_H
#define BATCHLAB_PLUGIN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "batchlab/plugin.h"

/* True when an operation table of struct `type` whose first field is `size` is long enough to
 * hold `field`: the host reads a field only when the plugin's size says it is there. */
#define BL__HAS_FIELD(tbl, type, field) BL_HAS_FIELD(tbl, type, field)

/* A shared object with its checked descriptors, in a process-wide table. References are held
 * by registries (one per registry that loaded it) and by bl_plugin_retain (one per live object
 * made from one of its plugins); dlclose happens when the last one goes. */
typedef struct bl__plugin_lib bl__plugin_lib;

/* Opens the shared object at `path` (an existing file) with dlopen(RTLD_NOW | RTLD_LOCAL),
 * calls its entry symbol and checks every descriptor (all must pass). A file that is already
 * open gives the same library. On success *out carries one new reference for the caller, to be
 * dropped with bl__plugin_lib_release. Errors name the file and say what to do. */
int bl__plugin_lib_open(bl_ctx *ctx, const char *path, bl__plugin_lib **out);

/* The loader's permission rule (plugin_perms.c), checked before dlopen: BL_EPLUGIN naming the
 * file or directory and the fix (chmod go-w) when the file or its directory is writable by
 * group or others (sticky or not), or a directory further up is writable by others without
 * the sticky bit. */
int bl__plugin_check_permissions(bl_ctx *ctx, const char *path);
void bl__plugin_lib_release(bl__plugin_lib *lib);

/* For tests: how many libraries the process-wide table holds, and one library's reference
 * count (both read under the table's lock). */
size_t bl__plugin_lib_table_size(void);
long bl__plugin_lib_refs(const bl__plugin_lib *lib);

/* The path the library was first opened with, and its descriptors in entry order. */
const char *bl__plugin_lib_path(const bl__plugin_lib *lib);
size_t bl__plugin_lib_count(const bl__plugin_lib *lib);
const bl_plugin *bl__plugin_lib_at(const bl__plugin_lib *lib, size_t index);

/* Checks one descriptor as the loader does (ABI, size, name, kind, ops table, options).
 * `file` (may be NULL) and `index` only feed the message. BL_EPLUGIN on failure. */
int bl__plugin_check(bl_ctx *ctx, const bl_plugin *plugin, const char *file, uint32_t index);

/* For the object wrappers: checks `plugin` (see bl__plugin_check) and that it is of `kind`;
 * BL_EINVAL "plugin 'x' is a scheduler, not a model" otherwise. */
int bl__plugin_expect(bl_ctx *ctx, const bl_plugin *plugin, bl_plugin_kind kind);

/* After a plugin operation returned rc != 0 (the caller cleared the error before calling):
 * makes sure there is a message and a negative code, prefixes it with `owner` ("dataset idx")
 * and returns the code. A plugin that failed silently gets "its <op> failed (returned N)". */
int bl__plugin_failed(bl_ctx *ctx, int rc, const char *owner, const char *op);

#endif
