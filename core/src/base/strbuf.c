#include "base/strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bl__sb_putn(bl__sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void bl__sb_puts(bl__sbuf *b, const char *s)
{
    bl__sb_putn(b, s, strlen(s));
}

void bl__sb_json_string(bl__sbuf *b, const char *s)
{
    bl__sb_puts(b, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        switch (*c) {
        case '"': bl__sb_puts(b, "\\\""); break;
        case '\\': bl__sb_puts(b, "\\\\"); break;
        case '\b': bl__sb_puts(b, "\\b"); break;
        case '\f': bl__sb_puts(b, "\\f"); break;
        case '\n': bl__sb_puts(b, "\\n"); break;
        case '\r': bl__sb_puts(b, "\\r"); break;
        case '\t': bl__sb_puts(b, "\\t"); break;
        default:
            if (*c < 0x20 || *c == 0x7f) {
                snprintf(esc, sizeof esc, "\\u%04x", *c);
                bl__sb_puts(b, esc);
            } else {
                bl__sb_putn(b, (const char *)c, 1);
            }
        }
    }
    bl__sb_puts(b, "\"");
}
