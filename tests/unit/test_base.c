/* The plumbing of core/src/base: the growable array, the growable string, the JSON string
 * escaper, the number formatter and the monotonic clock. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/grow.h"
#include "base/strbuf.h"
#include "testutil.h"

static void test_grow(void **state)
{
    (void)state;
    int *a = NULL;
    size_t cap = 0, reallocs = 0;
    for (size_t n = 0; n < 1000; n++) {
        size_t before = cap;
        int *p = bl__grow(a, &cap, n + 1, sizeof *a);
        assert_non_null(p);
        assert_true(cap >= n + 1);
        reallocs += cap != before;
        a = p;
        a[n] = (int)n;
    }
    for (size_t n = 0; n < 1000; n++)
        assert_int_equal(a[n], (int)n);
    assert_true(reallocs <= 8); /* doubling from 8: 8, 16, ..., 1024 */
    /* A size that overflows is refused and leaves the array as it was. */
    size_t keep = cap;
    assert_null(bl__grow(a, &cap, SIZE_MAX / 2, sizeof *a));
    assert_int_equal(cap, keep);
    assert_null(bl__grow(a, &cap, SIZE_MAX, 1));
    assert_int_equal(a[999], 999);
    free(a);
}

static void test_strbuf(void **state)
{
    (void)state;
    bl__sbuf b = {0};
    bl__sb_puts(&b, "batch ");
    bl__sb_printf(&b, "%d of %s", 128, "256");
    bl__sb_putn(&b, "xyz", 2);
    assert_false(b.failed);
    assert_string_equal(b.p, "batch 128 of 256xy");
    assert_int_equal(b.len, strlen(b.p));
    for (int i = 0; i < 1000; i++)
        bl__sb_printf(&b, "%04d", i);
    assert_int_equal(b.len, 18 + 4000);
    assert_memory_equal(b.p + b.len - 4, "0999", 4);
    bl__sb_clear(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.p, "");
    free(b.p);
}

static void test_json_string(void **state)
{
    (void)state;
    bl__sbuf b = {0};
    bl__sb_json_string(&b, "a\"b\\c\b\f\n\r\t\x01\x7f \xc3\xa9/");
    assert_string_equal(b.p, "\"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0001\\u007f \xc3\xa9/\"");
    bl__sb_clear(&b);
    bl__sb_json_stringn(&b, "a\0b", 3);
    assert_string_equal(b.p, "\"a\\u0000b\"");
    free(b.p);
}

/* issue 15, Found 11: invalid UTF-8 becomes U+FFFD (the export stays valid JSON), valid UTF-8
 * of every length passes; terminal text shows controls (C0, DEL, C1) and bad bytes as \xHH. */
static void test_utf8_and_terminal(void **state)
{
    (void)state;
    bl__sbuf b = {0};
    bl__sb_json_string(&b, "a\xff\xfe" "b\xc3" "c\xe2\x82\xac\xf0\x9f\x98\x80"
                           "\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80");
    assert_string_equal(b.p, "\"a\\ufffd\\ufffdb\\ufffdc\xe2\x82\xac\xf0\x9f\x98\x80"
                             "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"");
    bl__sb_clear(&b);
    bl__sb_json_stringn(&b, "\xe2\x82", 2); /* a sequence cut by the end */
    assert_string_equal(b.p, "\"\\ufffd\\ufffd\"");
    bl__sb_clear(&b);
    bl__sb_term_text(&b, "ok \xc3\xa9 \x1b[31mred\r\n\t\x7f\xc2\x9b" "2J\xff", false);
    assert_string_equal(b.p, "ok \xc3\xa9 \\x1B[31mred\\x0D\\x0A\\x09\\x7F\\xC2\\x9B2J\\xFF");
    bl__sb_clear(&b);
    bl__sb_term_text(&b, "line 1\n\tline 2\x1b", true);
    assert_string_equal(b.p, "line 1\n\tline 2\\x1B");
    free(b.p);
}

static void test_numbers(void **state)
{
    (void)state;
    char buf[40];
    bl__format_double(buf, sizeof buf, 0.1, 1);
    assert_string_equal(buf, "0.1");
    bl__format_double(buf, sizeof buf, 0.1, 17);
    assert_string_equal(buf, "0.10000000000000001");
    bl__format_double(buf, sizeof buf, 1e5, 1);
    assert_string_equal(buf, "1e+05");
    bl__format_double(buf, sizeof buf, 1e5, 6);
    assert_string_equal(buf, "100000");
    bl__format_double(buf, sizeof buf, 0.1 + 0.2, 15);
    assert_string_equal(buf, "0.30000000000000004");
    bl__format_double(buf, sizeof buf, DBL_MAX, 1);
    assert_true(strtod(buf, NULL) == DBL_MAX);
    bl__format_double(buf, sizeof buf, -INFINITY, 1);
    assert_string_equal(buf, "-inf");
    bl__format_json_number(buf, sizeof buf, NAN, 1);
    assert_string_equal(buf, "null");
    bl__format_json_number(buf, sizeof buf, -0.0, 17);
    assert_string_equal(buf, "-0.0");
    bl__format_json_number(buf, sizeof buf, 0.0, 17);
    assert_string_equal(buf, "0");
    bl__sbuf b = {0};
    bl__sb_json_number(&b, 2.5e-7, 1);
    assert_string_equal(b.p, "2.5e-07");
    free(b.p);
}

static void test_clock(void **state)
{
    (void)state;
    double t0 = bl__now();
    int64_t n0 = bl__now_ns();
    volatile double x = 0;
    for (int i = 0; i < 1000000; i++)
        x += i;
    double t1 = bl__now();
    int64_t n1 = bl__now_ns();
    assert_true(t1 >= t0);
    assert_true(n1 >= n0);
    assert_true(t1 - t0 < 60);
    /* The same clock in two units. */
    assert_true(fabs((double)n1 * 1e-9 - t1) < 1.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow),
        cmocka_unit_test(test_strbuf),
        cmocka_unit_test(test_json_string),
        cmocka_unit_test(test_utf8_and_terminal),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
