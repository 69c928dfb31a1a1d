/* Durations as text (base/duration.h). */
#include "base/duration.h"

#include <math.h>
#include <stdio.h>

const char *bl__format_seconds(char *buf, size_t cap, double v)
{
    if (v < 10)
        snprintf(buf, cap, "%.2f s", v);
    else if (v < 60)
        snprintf(buf, cap, "%.1f s", v);
    else if (v < 3600) {
        long s = (long)floor(v + 0.5);
        snprintf(buf, cap, "%ldm %02lds", s / 60, s % 60);
    } else {
        long m = (long)floor(v / 60 + 0.5);
        snprintf(buf, cap, "%ldh %02ldm", m / 60, m % 60);
    }
    return buf;
}
