/* Seconds as people read them — the one formatter of durations for the report, the
 * recommendation's text and the Lua library's tables (batchlab.tables "seconds"). */
#ifndef BATCHLAB_BASE_DURATION_H
#define BATCHLAB_BASE_DURATION_H

#include <stddef.h>

/* Writes `v` seconds into buf (cap bytes, 16 are enough) and returns buf: "4.20 s" below 10
 * (negative values too), "12.3 s" below a minute, "4m 05s" below an hour, else "1h 02m". */
const char *bl__format_seconds(char *buf, size_t cap, double v);

#endif
