/* Internal: the one growable-array rule (capacity doubles, size overflow checked). Byte
 * buffers and text use it through base/strbuf.h. */
#ifndef BATCHLAB_BASE_GROW_H
#define BATCHLAB_BASE_GROW_H

#include <stddef.h>

/* Room for at least `need` elements of `elem` bytes in `items` (capacity *cap elements;
 * items may be NULL with *cap 0). Returns the array to use from now on — `items` itself when
 * it is already large enough, else a reallocation whose capacity doubled (at least 8) and
 * *cap updated. Returns NULL when the size overflows or memory runs out; then `items` and
 * *cap are untouched and `items` still owns its elements. Usage:
 *     T *p = bl__grow(arr, &cap, n + 1, sizeof *arr);
 *     if (!p) return nomem(...);
 *     arr = p;  */
void *bl__grow(void *items, size_t *cap, size_t need, size_t elem);

#endif
