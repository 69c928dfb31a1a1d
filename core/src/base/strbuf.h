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
 * characters and DEL, valid UTF-8 as it is, and each byte that is not part of valid UTF-8
 * (a stray continuation byte, an overlong form, a surrogate, a cut sequence) as \ufffd, the
 * replacement character — so the text is always valid JSON and valid UTF-8. */
void bl__sb_json_string(bl__sbuf *b, const char *s);
/* The same for `n` bytes that may contain NUL (written \u0000). */
void bl__sb_json_stringn(bl__sbuf *b, const char *s, size_t n);

/* The length (1..4) of the valid UTF-8 sequence at c (n bytes available), or 0 when c[0] does
 * not start one (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF). */
size_t bl__utf8_valid_length(const unsigned char *c, size_t n);

/* Appends `s` for a terminal: printable text and valid UTF-8 as they are; control characters
 * (ESC, CR, BEL, ... and C1 controls U+0080..U+009F) and DEL as \xHH, invalid UTF-8 bytes as
 * \xHH too, so what a name holds can never move the cursor, recolour or retitle the
 * terminal. With multiline false tabs and line breaks are escaped too (one value stays on one
 * line); with multiline true they pass (a message of several lines). */
void bl__sb_term_text(bl__sbuf *b, const char *s, bool multiline);

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
