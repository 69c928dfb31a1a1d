/* Where this libbatchlab's plugins and Lua library are: next to the running libbatchlab.
 *
 * An installed copy (libbatchlab in <prefix>/<libdir>) finds <prefix>/<libdir>/batchlab/plugins
 * and <prefix>/share/batchlab/lua relative to where the library actually is, so an install
 * tree keeps working after it is moved and never looks into the build tree. A libbatchlab (or a
 * test linking its objects statically) inside the build tree uses the build tree's plugin
 * directory and the source tree's scripts/. Only if the library cannot locate itself (dladdr
 * fails) are the directories configured at build time used. */
#ifndef BL_BASE_PATHS_H
#define BL_BASE_PATHS_H

/* The directory holding the built-in plugins and device backends. Never NULL; the string is
 * static, computed once, and valid for the life of the process. */
const char *bl__plugin_dir(void);

/* The directory holding the Lua library (the folder that contains batchlab/schedules.lua).
 * Same lifetime as bl__plugin_dir. */
const char *bl__script_dir(void);

#endif
