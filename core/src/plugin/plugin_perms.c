/* The loader's permission rule (issue 15): a plugin is code batchlab runs — its constructors
 * run inside dlopen itself — so before dlopen the loader refuses a file that someone other
 * than its owner could have written or replaced:
 *   - the file (after symbolic links) writable by group or others;
 *   - the directory holding it (as named, and after links) writable by group or others, also
 *     with the sticky bit (in a 1777 directory such as /tmp anyone may have created the file);
 *   - any directory further up writable by others without the sticky bit (anyone could rename
 *     the directory below and put another one in its place). A sticky 1777 ancestor such as
 *     /tmp is accepted: only the owner of an entry may rename it there. Group-writable
 *     ancestors are accepted (Debian's /usr/local is root:staff 2775).
 * The message names the file or directory and the fix (chmod go-w). */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* realpath */
#endif

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plugin/plugin_internal.h"

static int refuse(bl_ctx *ctx, const char *plugin, const char *what, const char *path,
                  mode_t mode, const char *why)
{
    return bl_error(ctx, BL_EPLUGIN,
                    "plugin file '%s' is not loaded: %s '%s' is %s (mode %04o), so someone "
                    "else could replace the code batchlab would run; fix: chmod go-w '%s'",
                    plugin, what, path, why, (unsigned)(mode & 07777), path);
}

/* Checks the directory `dir` (absolute, no links) and every directory above it. */
static int check_chain(bl_ctx *ctx, const char *plugin, char *dir)
{
    bool holder = true; /* the directory holding the file */
    for (;;) {
        struct stat st;
        if (stat(dir, &st) != 0)
            return bl_error(ctx, BL_EPLUGIN, "plugin file '%s': cannot check directory '%s': %s",
                            plugin, dir, strerror(errno));
        bool sticky = (st.st_mode & S_ISVTX) != 0;
        if (holder && (st.st_mode & (S_IWGRP | S_IWOTH)))
            return refuse(ctx, plugin, "its directory", dir, st.st_mode,
                          sticky ? "writable by others (sticky: anyone may add files)"
                                 : (st.st_mode & S_IWOTH) ? "writable by others"
                                                          : "writable by its group");
        if (!holder && (st.st_mode & S_IWOTH) && !sticky)
            return refuse(ctx, plugin, "the directory", dir, st.st_mode,
                          "writable by others without the sticky bit");
        holder = false;
        char *slash = strrchr(dir, '/');
        if (!slash || (slash == dir && dir[1] == '\0'))
            return BL_OK; /* "/" was checked */
        if (slash == dir)
            dir[1] = '\0';
        else
            *slash = '\0';
    }
}

/* The real path of the directory holding `path` as named (the link itself, not its target). */
static char *named_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash)
        dir = realpath(".", NULL);
    else if (slash == path)
        dir = realpath("/", NULL);
    else {
        size_t n = (size_t)(slash - path);
        char *copy = malloc(n + 1);
        if (!copy)
            return NULL;
        memcpy(copy, path, n);
        copy[n] = '\0';
        dir = realpath(copy, NULL);
        free(copy);
    }
    return dir;
}

int bl__plugin_check_permissions(bl_ctx *ctx, const char *path)
{
    char *real = realpath(path, NULL);
    if (!real)
        return bl_error(ctx, BL_EPLUGIN, "plugin file '%s' could not be loaded: %s", path,
                        strerror(errno));
    struct stat st;
    int rc = BL_OK;
    if (stat(real, &st) != 0)
        rc = bl_error(ctx, BL_EPLUGIN, "plugin file '%s' could not be loaded: %s", path,
                      strerror(errno));
    else if (st.st_mode & (S_IWGRP | S_IWOTH))
        rc = refuse(ctx, path, "the file", real, st.st_mode,
                    (st.st_mode & S_IWOTH) ? "writable by others" : "writable by its group");
    if (rc == BL_OK) {
        char *slash = strrchr(real, '/'); /* realpath is absolute: there is one */
        if (slash == real)
            real[1] = '\0';
        else
            *slash = '\0';
        rc = check_chain(ctx, path, real); /* from the file's directory up */
    }
    free(real);
    if (rc == BL_OK) {
        char *dir = named_dir(path); /* a link elsewhere: its own directory counts too */
        if (!dir)
            return bl_error(ctx, BL_EPLUGIN, "plugin file '%s': cannot resolve its "
                            "directory: %s", path, strerror(errno));
        rc = check_chain(ctx, path, dir);
        free(dir);
    }
    return rc;
}
