/* Device backends: parsing "name[:N]", finding libbatchlab-<name>.so on the plugin search
 * path, checking its descriptor, and the open/free path every device goes through (the
 * built-in CPU backend included). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "batchlab/device.h"
#include "batchlab/device_backend.h"
#include "batchlab/plugin.h"
#include "build_config.h"
#include "device/device_internal.h"

#define NAME_CAP 64

/* "cuda:1" → name "cuda", index 1. */
static int parse_name(bl_ctx *ctx, const char *spec, char *name, int *index)
{
    size_t len = strcspn(spec, ":");
    bool ok = len > 0 && len < NAME_CAP;
    for (size_t i = 0; ok && i < len; i++) {
        char c = spec[i];
        ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    }
    long idx = 0;
    if (ok && spec[len] == ':') {
        char *end = NULL;
        idx = strtol(spec + len + 1, &end, 10);
        ok = spec[len + 1] >= '0' && spec[len + 1] <= '9' && end && *end == '\0' && idx < 1024;
    }
    if (!ok)
        return bl_error(ctx, BL_EINVAL,
                        "unknown device \"%s\" (expected a backend name with an optional "
                        "index: \"cpu\", \"cuda\", \"cuda:1\")",
                        spec);
    memcpy(name, spec, len);
    name[len] = '\0';
    *index = (int)idx;
    return BL_OK;
}

/* The descriptor's required fields are there and its ABI is ours. */
static int check_descriptor(bl_ctx *ctx, const bl_device_backend *b, const char *name,
                            const char *file)
{
    if (!b)
        return bl_error(ctx, BL_EPLUGIN, "device backend '%s' (%s): %s() returned NULL", name,
                        file, BL_DEVICE_BACKEND_SYMBOL);
    if (b->abi != BL_DEVICE_BACKEND_ABI)
        return bl_error(ctx, BL_EPLUGIN,
                        "device backend '%s' (%s) was built for device ABI %u, this batchlab "
                        "has device ABI %u; rebuild the backend against this batchlab",
                        name, file, (unsigned)b->abi, (unsigned)BL_DEVICE_BACKEND_ABI);
    size_t need = offsetof(bl_device_backend, destroy) + sizeof b->destroy;
    if (b->size < need)
        return bl_error(ctx, BL_EPLUGIN,
                        "device backend '%s' (%s): descriptor size %u is shorter than the %zu "
                        "bytes device ABI %u requires (this batchlab's is %zu); rebuild it "
                        "against this batchlab",
                        name, file, (unsigned)b->size, need, (unsigned)BL_DEVICE_BACKEND_ABI,
                        sizeof(bl_device_backend));
    if (!b->name || strcmp(b->name, name) != 0 || !b->probe || !b->count || !b->open ||
        !b->destroy)
        return bl_error(ctx, BL_EPLUGIN,
                        "device backend '%s' (%s): its descriptor %s", name, file,
                        !b->name || strcmp(b->name, name) != 0 ? "names another backend"
                                                                 : "lacks an entry point");
    return BL_OK;
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* What a missing "cuda" backend means in this build. */
static const char *cuda_hint(const char *name)
{
    if (strcmp(name, "cuda") != 0)
        return "";
    return BATCHLAB_CUDA_BUILT ? " (this batchlab was built with CUDA: is it installed?)"
                               : " (this batchlab was built without CUDA: no CUDA toolkit was "
                                 "found at build time, or BATCHLAB_CUDA=OFF; see docs/cuda.md)";
}

/* Finds and opens libbatchlab-<name>.so: the first file on the search path. On success *lib
 * is its dlopen handle, *out its descriptor and file[0..cap) its path. */
static int load_backend(bl_ctx *ctx, const char *spec, const char *name, void **lib,
                        const bl_device_backend **out, char *file, size_t cap)
{
    bl_registry *reg = NULL;
    int rc = bl_registry_new(ctx, &reg);
    if (rc != BL_OK)
        return rc;
    const char **dirs = NULL;
    size_t n = bl_registry_search_path(reg, &dirs);
    char tried[768] = "", path[4096];
    size_t used = 0;
    const char *found = NULL;
    for (size_t i = 0; i < n && !found; i++) {
        snprintf(path, sizeof path, "%s/" BL_DEVICE_BACKEND_PREFIX "%s.so", dirs[i], name);
        if (is_file(path))
            found = path;
        else if (used < sizeof tried)
            used += (size_t)snprintf(tried + used, sizeof tried - used, "%s%s",
                                     used ? ", " : "", path);
    }
    if (!found) {
        bl_registry_free(reg);
        return bl_error(ctx, BL_EUNSUPPORTED,
                        "device \"%s\": no backend libbatchlab-%s.so on the plugin search path "
                        "(tried %s); build or install the %s backend%s, or add its directory to "
                        "BATCHLAB_PLUGIN_PATH; \"cpu\" is always available",
                        spec, name, n ? tried : "no directories", name, cuda_hint(name));
    }
    void *handle = dlopen(found, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        rc = bl_error(ctx, BL_EPLUGIN, "device backend '%s': cannot load %s: %s", name, found,
                      why ? why : "unknown dlopen error");
        bl_registry_free(reg);
        return rc;
    }
    bl_device_backend_entry entry;
    void *sym = dlsym(handle, BL_DEVICE_BACKEND_SYMBOL);
    memcpy(&entry, &sym, sizeof entry);
    const bl_device_backend *b = sym ? entry() : NULL;
    if (!sym)
        rc = bl_error(ctx, BL_EPLUGIN,
                      "device backend '%s': %s exports no %s(); it is not a batchlab device "
                      "backend",
                      name, found, BL_DEVICE_BACKEND_SYMBOL);
    else
        rc = check_descriptor(ctx, b, name, found);
    if (rc == BL_OK) {
        *lib = handle;
        *out = b;
        snprintf(file, cap, "%s", found);
    } else {
        dlclose(handle);
    }
    bl_registry_free(reg);
    return rc;
}

/* probe, count, open; on success the device remembers its backend and library. `file` is the
 * backend's shared object (NULL for the built-in one), for messages. */
static int open_with(bl_ctx *ctx, const bl_device_backend *b, void *lib, const char *file,
                     int index, int threads, bl_device **out)
{
    char why[200] = "";
    int rc = b->probe(why, sizeof why);
    if (rc != BL_OK)
        return bl_error(ctx, BL_EUNSUPPORTED, "device backend '%s'%s%s%s%s%s cannot run here: %s",
                        b->name, b->version ? " " : "", b->version ? b->version : "",
                        file ? " (" : "", file ? file : "", file ? ")" : "",
                        why[0] ? why : "its probe gave no reason");
    int count = b->count();
    if (index >= count)
        return bl_error(ctx, BL_EUNSUPPORTED,
                        "device \"%s:%d\": the %s backend has %d device%s (0..%d)", b->name,
                        index, b->name, count, count == 1 ? "" : "s", count - 1);
    bl_device *dev = NULL;
    rc = b->open(ctx, index, threads, &dev);
    if (rc != BL_OK) {
        if (rc > 0 || bl_errcode(ctx) == BL_OK)
            return bl_error(ctx, rc < 0 ? rc : BL_EPLUGIN,
                            "device backend '%s': open of device %d failed (returned %d)",
                            b->name, index, rc);
        return bl_error_prefix(ctx, "device backend '%s'", b->name);
    }
    if (!dev || !dev->ops || dev->ops->size < sizeof(bl_device_ops)) {
        size_t got = dev && dev->ops ? dev->ops->size : 0;
        if (dev)
            b->destroy(dev);
        return bl_error(ctx, BL_EPLUGIN,
                        "device backend '%s': its operation table has %zu bytes, device ABI %u "
                        "needs %zu",
                        b->name, got, (unsigned)BL_DEVICE_BACKEND_ABI, sizeof(bl_device_ops));
    }
    dev->backend = b;
    dev->lib = lib;
    dev->watches = NULL;
    dev->fault = 0;
    *out = dev;
    return BL_OK;
}

int bl_device_open_threads(bl_ctx *ctx, const char *spec, int threads, bl_device **out)
{
    if (!spec || !out)
        return bl_error(ctx, BL_EINVAL, "bl_device_open: %s is NULL", !spec ? "name" : "out");
    if (threads < 0)
        return bl_error(ctx, BL_EINVAL,
                        "bl_device_open: threads must be 0 (the backend's default) or positive, "
                        "got %d",
                        threads);
    char name[NAME_CAP];
    int index = 0;
    int rc = parse_name(ctx, spec, name, &index);
    if (rc != BL_OK)
        return rc;
    if (strcmp(name, "cpu") == 0)
        return open_with(ctx, bl__device_cpu_backend(), NULL, NULL, index, threads, out);
    void *lib = NULL;
    const bl_device_backend *b = NULL;
    char file[4096];
    if ((rc = load_backend(ctx, spec, name, &lib, &b, file, sizeof file)) != BL_OK)
        return rc;
    rc = open_with(ctx, b, lib, file, index, threads, out);
    if (rc != BL_OK)
        dlclose(lib);
    return rc;
}

int bl_device_open(bl_ctx *ctx, const char *name, bl_device **out)
{
    return bl_device_open_threads(ctx, name, 0, out);
}

int bl_device_cpu_open(bl_ctx *ctx, int threads, bl_device **out)
{
    return bl_device_open_threads(ctx, "cpu", threads, out);
}

void bl_device_free(bl_device *dev)
{
    if (!dev)
        return;
    void *lib = dev->lib;
    dev->backend->destroy(dev);
    if (lib)
        dlclose(lib);
}
