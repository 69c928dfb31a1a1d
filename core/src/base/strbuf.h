/* Internal: a growable string, and JSON string escaping, shared by the config text and JSON
 * code. */
#ifndef BATCHLAB_STRBUF_H
#define BATCHLAB_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

/* A growable string; `failed` is set once an allocation fails (p stays valid or NULL). The
 * text is always NUL-terminated once anything was appended. The owner frees p. */
typedef struct bl__sbuf {
    char *p;
    size_t len, cap;
    bool failed;
} bl__sbuf;

void bl__sb_putn(bl__sbuf *b, const char *s, size_t n);
void bl__sb_puts(bl__sbuf *b, const char *s);

/* Appends `s` as a JSON string: quotes, the two-character escapes, \u00XX for other control
 * characters and DEL, everything else (UTF-8 included) as it is. */
void bl__sb_json_string(bl__sbuf *b, const char *s);

#endif
