#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int bl_test_contains(const char *haystack, const char *needle)
{
    return haystack && needle && strstr(haystack, needle) != NULL;
}

int bl_test_setup(void **state)
{
    bl_test_env *env = calloc(1, sizeof *env);
    if (!env)
        return -1;
    env->ctx = bl_ctx_new();
    if (!env->ctx || bl_device_cpu_open(env->ctx, 1, &env->dev) != BL_OK) {
        fprintf(stderr, "cannot open the CPU device: %s\n", bl_errmsg(env->ctx));
        bl_ctx_free(env->ctx);
        free(env);
        return -1;
    }
    *state = env;
    return 0;
}

int bl_test_teardown(void **state)
{
    bl_test_env *env = *state;
    if (env) {
        bl_device_free(env->dev);
        bl_ctx_free(env->ctx);
        free(env);
    }
    *state = NULL;
    return 0;
}

const char *bl_test_tmpdir(const char *name)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s.%ld", BATCHLAB_TEST_DATA_DIR, name, (long)getpid());
    mkdir(path, 0755);
    return path;
}

void bl_test_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[1200];
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
}

int bl_test_load_plugin(const char *path, bl_plugin_kind kind, bl_ctx **ctx, bl_registry **reg,
                        const bl_plugin **plugin)
{
    *ctx = bl_ctx_new();
    if (!*ctx || bl_registry_new(*ctx, reg) != BL_OK ||
        bl_registry_find(*ctx, *reg, kind, path, plugin) != BL_OK) {
        fprintf(stderr, "cannot load %s: %s\n", path, *ctx ? bl_errmsg(*ctx) : "out of memory");
        return -1;
    }
    return 0;
}
