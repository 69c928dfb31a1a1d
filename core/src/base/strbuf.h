/* Internal: the one growable string of libbatchlab, the one JSON string escaper and the one
 * shortest round-trip number formatter. */
#ifndef BATCHLAB_STRBUF_H
#define BATCHLAB_STRBUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* A growable string; `failed` is set once an allocation fails (p stays valid or NULL) and
 * every later append does nothing. The text is always NUL-terminated once anything was
 * appended (it may hold NUL bytes of its own when bl__sb_putn was given them). Zero
 * initialisation ({0}) makes an empty buffer; the owner frees p. */
typedef struct bl__sbuf {
    char *p;
    size_t len, cap;
    bool failed;
} bl__sbuf;

void bl__sb_putn(bl__sbuf *b, const char *s, size_t n);
void bl__sb_puts(bl__sbuf *b, const char *s);
/* Appends printf-formatted text. */
void bl__sb_printf(bl__sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bl__sb_vprintf(bl__sbuf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Empties the buffer (keeps its memory and the `failed` flag). */
void bl__sb_clear(bl__sbuf *b);

/* Appends `s` as a JSON string: quotes, the two-character escapes, \u00XX for other control
 * characters and DEL, everything else (UTF-8 included) as it is. */
void bl__sb_json_string(bl__sbuf *b, const char *s);
/* The same for `n` bytes that may contain NUL (written \u0000). */
void bl__sb_json_stringn(bl__sbuf *b, const char *s, size_t n);

/* Writes `v` into buf (cap >= 32 holds any double) with the fewest significant digits,
 * min_digits to 17, that read back as exactly `v`: min_digits 1 gives the shortest form
 * ("1e+05", "0.1"), 6 or 15 keep "%g"'s plain notation for small exponents ("100000"),
 * 17 is "%.17g". Non-finite values are written as "%g" writes them ("nan", "-inf"). */
void bl__format_double(char *buf, size_t cap, double v, int min_digits);

/* `v` as a JSON number into buf (cap >= 32): bl__format_double(min_digits), with "null" for
 * a non-finite value (JSON has none) and "-0.0" for negative zero (so that a reader keeps it
 * a double: "-0" reads back as the integer 0, and the canonical text and hash would change). */
void bl__format_json_number(char *buf, size_t cap, double v, int min_digits);
/* Appends bl__format_json_number's text. */
void bl__sb_json_number(bl__sbuf *b, double v, int min_digits);

#endif
