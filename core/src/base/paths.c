/* Where this libbatchlab's plugins and Lua library are (paths.h). */
#define _GNU_SOURCE /* dladdr */
#include "base/paths.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "build_config.h"

static char plugin_dir[PATH_MAX];
static char script_dir[PATH_MAX];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* True when `path` (canonical) is `root` or lies below it. */
static bool is_under(const char *path, const char *root)
{
    size_t n = strlen(root);
    return strncmp(path, root, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static void use_configured(void)
{
    snprintf(plugin_dir, sizeof plugin_dir, "%s", BATCHLAB_INSTALL_PLUGIN_DIR);
    snprintf(script_dir, sizeof script_dir, "%s", BATCHLAB_INSTALL_SCRIPT_DIR);
}

static void locate(void)
{
    Dl_info info;
    char self[PATH_MAX];
    char root[PATH_MAX];
    if (!dladdr((void *)&bl__plugin_dir, &info) || !info.dli_fname ||
        !realpath(info.dli_fname, self)) {
        use_configured();
        return;
    }
    char *slash = strrchr(self, '/');
    if (!slash) {
        use_configured();
        return;
    }
    if (slash == self)
        slash++;                                 /* a library in "/": keep the "/" */
    *slash = '\0';                               /* self = the library's directory */
    /* The install layout next to the library wins: an install tree placed anywhere (even
     * inside the build folder) is itself. */
    int n = snprintf(plugin_dir, sizeof plugin_dir, "%s/%s", self,
                     BATCHLAB_LIBDIR_TO_PLUGIN_DIR);
    if (n > 0 && (size_t)n < sizeof plugin_dir && is_dir(plugin_dir)) {
        char rel[PATH_MAX];
        n = snprintf(rel, sizeof rel, "%s/%s", self, BATCHLAB_LIBDIR_TO_SCRIPT_DIR);
        if (n > 0 && (size_t)n < sizeof rel) {
            if (!realpath(rel, script_dir))                 /* "lib/../share" → "share" */
                memcpy(script_dir, rel, (size_t)n + 1);
            return;
        }
    }
    if (realpath(BATCHLAB_BUILD_DIR, root) && is_under(self, root)) {
        snprintf(plugin_dir, sizeof plugin_dir, "%s", BATCHLAB_BUILD_PLUGIN_DIR);
        snprintf(script_dir, sizeof script_dir, "%s", BATCHLAB_BUILD_SCRIPT_DIR);
        return;
    }
    /* Neither: an install whose plugin folder is missing. Still its own folders, so the
     * messages name where the plugins were expected. */
    n = snprintf(plugin_dir, sizeof plugin_dir, "%s/%s", self, BATCHLAB_LIBDIR_TO_PLUGIN_DIR);
    int m = snprintf(script_dir, sizeof script_dir, "%s/%s", self,
                     BATCHLAB_LIBDIR_TO_SCRIPT_DIR);
    if (n < 0 || (size_t)n >= sizeof plugin_dir || m < 0 || (size_t)m >= sizeof script_dir)
        use_configured();
}

const char *bl__plugin_dir(void)
{
    pthread_once(&once, locate);
    return plugin_dir;
}

const char *bl__script_dir(void)
{
    pthread_once(&once, locate);
    return script_dir;
}
