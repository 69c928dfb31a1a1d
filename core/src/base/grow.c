/* The growable-array rule of base/grow.h. */
#include "base/grow.h"

#include <stdint.h>
#include <stdlib.h>

void *bl__grow(void *items, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap && items)
        return items;
    if (elem == 0)
        return NULL;
    size_t ncap = *cap >= 8 ? *cap : 8;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return NULL;
        ncap *= 2;
    }
    if (ncap > SIZE_MAX / elem)
        return NULL;
    void *p = realloc(items, ncap * elem);
    if (!p)
        return NULL;
    *cap = ncap;
    return p;
}
