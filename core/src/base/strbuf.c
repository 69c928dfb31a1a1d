/* The growable string, JSON string escaper and number formatter of base/strbuf.h. */
#include "base/strbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/grow.h"

/* Room for `n` more bytes plus the NUL; false (and b->failed) when memory runs out. */
static bool reserve(bl__sbuf *b, size_t n)
{
    if (b->failed)
        return false;
    if (n > (size_t)-1 - b->len - 1) {
        b->failed = true;
        return false;
    }
    char *p = bl__grow(b->p, &b->cap, b->len + n + 1, 1);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->p = p;
    return true;
}

void bl__sb_putn(bl__sbuf *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void bl__sb_puts(bl__sbuf *b, const char *s)
{
    bl__sb_putn(b, s, strlen(s));
}

void bl__sb_vprintf(bl__sbuf *b, const char *fmt, va_list ap)
{
    if (b->failed)
        return;
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    if (n >= 0 && reserve(b, (size_t)n)) {
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, again);
        b->len += (size_t)n;
    }
    va_end(again);
}

void bl__sb_printf(bl__sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bl__sb_vprintf(b, fmt, ap);
    va_end(ap);
}

void bl__sb_clear(bl__sbuf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

size_t bl__utf8_valid_length(const unsigned char *c, size_t n)
{
    if (n == 0)
        return 0;
    unsigned char b0 = c[0];
    if (b0 < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* the range of the second byte */
    if (b0 >= 0xC2 && b0 <= 0xDF)
        len = 2;
    else if (b0 >= 0xE0 && b0 <= 0xEF) {
        len = 3;
        if (b0 == 0xE0)
            lo = 0xA0; /* no overlong forms */
        else if (b0 == 0xED)
            hi = 0x9F; /* no UTF-16 surrogates */
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        len = 4;
        if (b0 == 0xF0)
            lo = 0x90;
        else if (b0 == 0xF4)
            hi = 0x8F; /* nothing past U+10FFFF */
    } else
        return 0;
    if (n < len || c[1] < lo || c[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if (c[k] < 0x80 || c[k] > 0xBF)
            return 0;
    return len;
}

void bl__sb_json_stringn(bl__sbuf *b, const char *s, size_t n)
{
    bl__sb_puts(b, "\"");
    const unsigned char *c = (const unsigned char *)s;
    size_t run = 0; /* bytes written as they are, not yet appended */
    for (size_t i = 0; i < n; i++) {
        const char *esc = NULL;
        char hex[8];
        if (c[i] >= 0x80) {
            size_t len = bl__utf8_valid_length(c + i, n - i);
            if (len > 0) {
                run += len;
                i += len - 1;
                continue;
            }
            esc = "\\ufffd"; /* a byte that is not part of valid UTF-8 */
        } else {
            switch (c[i]) {
            case '"': esc = "\\\""; break;
            case '\\': esc = "\\\\"; break;
            case '\b': esc = "\\b"; break;
            case '\f': esc = "\\f"; break;
            case '\n': esc = "\\n"; break;
            case '\r': esc = "\\r"; break;
            case '\t': esc = "\\t"; break;
            default:
                if (c[i] < 0x20 || c[i] == 0x7f) {
                    snprintf(hex, sizeof hex, "\\u%04x", c[i]);
                    esc = hex;
                }
            }
        }
        if (!esc) {
            run++;
            continue;
        }
        bl__sb_putn(b, s + i - run, run);
        run = 0;
        bl__sb_puts(b, esc);
    }
    bl__sb_putn(b, s + n - run, run);
    bl__sb_puts(b, "\"");
}

void bl__sb_json_string(bl__sbuf *b, const char *s)
{
    bl__sb_json_stringn(b, s, strlen(s));
}

void bl__sb_term_text(bl__sbuf *b, const char *s, bool multiline)
{
    const unsigned char *c = (const unsigned char *)s;
    size_t n = strlen(s), run = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = c[i] < 0x80 ? 1 : bl__utf8_valid_length(c + i, n - i);
        /* U+0080..U+009F (C2 80..C2 9F) are the C1 controls: CSI (U+009B) starts an escape
         * sequence on many terminals just as ESC [ does. */
        bool control = len == 1 ? (c[i] < 0x20 || c[i] == 0x7f) &&
                                      !(multiline && (c[i] == '\n' || c[i] == '\t'))
                                : len == 2 && c[i] == 0xC2 && c[i + 1] <= 0x9F;
        if (len > 0 && !control) {
            run += len;
            i += len - 1;
            continue;
        }
        bl__sb_putn(b, s + i - run, run);
        run = 0;
        size_t bad = len > 0 ? len : 1;
        for (size_t k = 0; k < bad; k++)
            bl__sb_printf(b, "\\x%02X", c[i + k]);
        i += bad - 1;
    }
    bl__sb_putn(b, s + n - run, run);
}

void bl__format_double(char *buf, size_t cap, double v, int min_digits)
{
    if (min_digits < 1)
        min_digits = 1;
    if (min_digits > 17)
        min_digits = 17;
    for (int digits = min_digits; digits <= 17; digits++) {
        snprintf(buf, cap, "%.*g", digits, v);
        if (!isfinite(v) || strtod(buf, NULL) == v)
            return;
    }
}

void bl__format_json_number(char *buf, size_t cap, double v, int min_digits)
{
    if (!isfinite(v))
        snprintf(buf, cap, "null");
    else if (v == 0 && signbit(v))
        snprintf(buf, cap, "-0.0");
    else
        bl__format_double(buf, cap, v, min_digits);
}

void bl__sb_json_number(bl__sbuf *b, double v, int min_digits)
{
    char num[40];
    bl__format_json_number(num, sizeof num, v, min_digits);
    bl__sb_puts(b, num);
}
