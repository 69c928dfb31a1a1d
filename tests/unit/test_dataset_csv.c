/* The "csv" dataset plugin (plugins/datasets/csv.c) on CSV files written here: headers, label
 * columns, class mapping, quoting, separators, line endings, standardization, regression, the
 * validation split, a test file and the error paths (ragged row, non-numeric cell, empty file,
 * unterminated quote, unknown label column, missing file). */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define PLUGIN BATCHLAB_BUILD_PLUGIN_DIR "/bl_csv.so"

typedef struct fx {
    bl_ctx *ctx;
    bl_registry *reg;
    const bl_plugin *plugin;
    char dir[1024];
    char path[1200], test_path[1200];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    if (bl_test_load_plugin(PLUGIN, BL_PLUGIN_DATASET, &f->ctx, &f->reg, &f->plugin) != 0)
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s", bl_test_tmpdir("csv"));
    snprintf(f->path, sizeof f->path, "%s/data.csv", f->dir);
    snprintf(f->test_path, sizeof f->test_path, "%s/test.csv", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    unlink(f->path);
    unlink(f->test_path);
    rmdir(f->dir);
    bl_registry_free(f->reg);
    bl_ctx_free(f->ctx);
    free(f);
    return 0;
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fwrite(text, 1, strlen(text), fp);
    assert_int_equal(fclose(fp), 0);
}

/* Writes `text` to data.csv and opens it with the given "name=value" options (NULL-ended). */
static int open_csv(fx *f, bl_dataset **ds, const char *text, ...)
{
    if (text)
        write_text(f->path, text);
    bl_config *cfg = NULL;
    BL_ASSERT_OK(f->ctx, bl_config_new(f->ctx, &cfg));
    BL_ASSERT_OK(f->ctx, bl_config_set_string(f->ctx, cfg, "file", f->path));
    va_list ap;
    va_start(ap, text);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL)
        BL_ASSERT_OK(f->ctx, bl_config_set_assignment(f->ctx, cfg, a));
    va_end(ap);
    *ds = NULL;
    int rc = bl_dataset_open(f->ctx, f->plugin, cfg, ds);
    bl_config_free(cfg);
    if (rc && getenv("BL_TEST_VERBOSE"))
        printf("    %s\n", bl_errmsg(f->ctx));
    return rc;
}

/* Gathers samples 0..n-1 of a split (n ≤ 64, dim ≤ 8). */
static void gather(fx *f, bl_dataset *ds, bl_split s, int64_t n, float *x, void *y)
{
    int64_t idx[64];
    assert_true(n <= 64);
    for (int64_t i = 0; i < n; i++)
        idx[i] = i;
    BL_ASSERT_OK(f->ctx, bl_dataset_gather(f->ctx, ds, s, idx, n, x, y));
}

static void header_and_values(void **state)
{
    fx *f = *state;
    bl_dataset *ds;
    BL_ASSERT_OK(f->ctx, open_csv(f, &ds, "a,b,label\n1,2,0\n3,4.5,1\n-5,6e1,0\n",
                                  "standardize=false", NULL));
    const bl_data_info *info = bl_dataset_info(ds);
    assert_int_equal(info->sample.ndim, 1);
    assert_int_equal(info->sample.dim[0], 2);
    assert_int_equal(info->classes, 2);
    assert_int_equal(info->target_dim, 1);
    assert_int_equal(info->count[BL_SPLIT_TRAIN], 3);
    assert_int_equal(info->count[BL_SPLIT_TEST], 0);
    assert_string_equal(info->class_names[0], "0");
    assert_string_equal(info->class_names[1], "1");
    float x[6];
    int32_t y[3];
    gather(f, ds, BL_SPLIT_TRAIN, 3, x, y);
    const float want[6] = {1, 2, 3, 4.5f, -5, 60};
    assert_memory_equal(x, want, sizeof want);
    assert_int_equal(y[0], 0);
    assert_int_equal(y[1], 1);
    assert_int_equal(y[2], 0);
    bl_dataset_close(ds);

    /* the label column by name (first column) and by index */
    BL_ASSERT_OK(f->ctx, open_csv(f, &ds, NULL, "standardize=false", "label=a", NULL));
    assert_int_equal(bl_dataset_info(ds)->classes, 3); /* -5, 1, 3 */
    gather(f, ds, BL_SPLIT_TRAIN, 3, x, y);
    const float want_a[6] = {2, 0, 4.5f, 1, 60, 0};
    assert_memory_equal(x, want_a, sizeof want_a);
    assert_int_equal(y[0], 1); /* sorted numerically: -5 → 0, 1 → 1, 3 → 2 */
    assert_int_equal(y[1], 2);
    assert_int_equal(y[2], 0);
    assert_string_equal(bl_dataset_info(ds)->class_names[0], "-5");
    bl_dataset_close(ds);
    BL_ASSERT_OK(f->ctx, open_csv(f, &ds, NULL, "standardize=false", "label=1", NULL));
    assert_string_equal(bl_dataset_info(ds)->class_names[2], "60"); /* 2, 4.5, 6e1 */
    bl_dataset_close(ds);
    BL_ASSERT_OK(f->ctx, open_csv(f, &ds, NULL, "standardize=false", "label=-1", NULL));
    assert_int_equal(bl_dataset_info(ds)->classes, 2);
    bl_dataset_close(ds);
}

static void header_detection(void **state)
{
    fx *f = *state;
    bl_dataset *ds;
    float x[8];
    int32_t y[4];
    /* no header: all numbers */
    BL_ASSERT_OK(f->ctx, open_csv(f, &ds, "1,2,0\n3,4,1\n", "standardize=false", NULL));
    assert_int_equal(bl_dataset_info(ds)->count[BL_SPLIT_TRAIN], 2);
    bl_dataset_close(ds);
    /* text labels alone do not make a header */
    BL_ASSERT_OK(f->ctx, open_csv(f, &ds, "1,2,cat\n3,4,dog\n5,6,cat\n", NULL));
    assert_int_equal(bl_dataset_info(ds)->count[BL_SPLIT_TRAIN], 3);
    bl_dataset_close(ds);
    /* header = yes drops the first row even when it is numeric; header = no keeps it */
    BL_ASSERT_OK(f->ctx, open_csv(f, &ds, "1,2,0\n3,4,1\n5,6,0\n", "header=yes",
                                  "standardize=false", NULL));
    assert_int_equal(bl_dataset_info(ds)->count[BL_SPLIT_TRAIN], 2);
    gather(f, ds, BL_SPLIT_TRAIN, 2, x, y);
    assert_float_equal(x[0], 3, 0);
    bl_dataset_close(ds);
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "line 1, column 1",
                  open_csv(f, &ds, "a,b,c\n1,2,0\n", "header=no", NULL));
}

static void string_labels_and_gaps(void **state)
{
    fx *f = *state;
    bl_dataset *ds;
    float x[8];
    int32_t y[4];
    BL_ASSERT_OK(f->ctx, open_csv(f, &ds,
                                  "x,y,species\n1,2,virginica\n3,4, setosa\n5,6,versicolor\n"
                                  "7,8,setosa\n",
                                  NULL));
    const bl_data_info *info = bl_dataset_info(ds);
    assert_int_equal(info->classes, 3);
    assert_string_equal(info->class_names[0], "setosa");
    assert_string_equal(info->class_names[1], "versicolor");
    assert_string_equal(info->class_names[2], "virginica");
    gather(f, ds, BL_SPLIT_TRAIN, 4, x, y);
    assert_int_equal(y[0], 2);
    assert_int_equal(y[1], 0); /* spaces around a value are ignored */
    assert_int_equal(y[2], 1);
    assert_int_equal(y[3], 0);
    bl_dataset_close(ds);

    /* integer labels with a gap: sorted distinct values, so 1,2,5 → 0,1,2 */
    BL_ASSERT_OK(f->ctx, open_csv(f, &ds, "1,5\n2,1\n3,2\n4,5.0\n", NULL));
    info = bl_dataset_info(ds);
    assert_int_equal(info->classes, 3);
    assert_string_equal(info->class_names[2], "5");
    gather(f, ds, BL_SPLIT_TRAIN, 4, x, y);
    assert_int_equal(y[0], 2);
    assert_int_equal(y[1], 0);
    assert_int_equal(y[2], 1);
    assert_int_equal(y[3], 2); /* 5.0 is the class of 5 */
    bl_dataset_close(ds);

    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "at least two distinct labels",
                  open_csv(f, &ds, "1,7\n2,7\n", NULL));
}

static void quoting_separators_line_ends(void **state)
{
    fx *f = *state;
    bl_dataset *ds;
    float x[8];
    int32_t y[4];
    /* quoted fields: separators, doubled quotes and a line break inside quotes; a BOM; CRLF;
     * blank lines; no final line break */
    BL_ASSERT_OK(f->ctx, open_csv(f, &ds,
                                  "\xEF\xBB\xBF\"first, one\",\"sec\nond\",\"la\"\"bel\"\r\n"
                                  "\"1.5\",2,\"a,b\"\r\n\r\n"
                                  "3 , \"4\" ,\"say \"\"hi\"\"\"\r\n"
                                  "\n5,6,\"a,b\"",
                                  "standardize=false", "label=la\"bel", NULL));
    const bl_data_info *info = bl_dataset_info(ds);
    assert_int_equal(info->count[BL_SPLIT_TRAIN], 3);
    assert_int_equal(info->classes, 2);
    assert_string_equal(info->class_names[0], "a,b");
    assert_string_equal(info->class_names[1], "say \"hi\"");
    gather(f, ds, BL_SPLIT_TRAIN, 3, x, y);
    const float want[6] = {1.5f, 2, 3, 4, 5, 6};
    assert_memory_equal(x, want, sizeof want);
    assert_int_equal(y[1], 1);
    bl_dataset_close(ds);
    /* the quoted line break counts: the bad cell is on line 4 */
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "line 4, column 2 ('sec\nond'): expected a number",
                  open_csv(f, &ds, "a,\"sec\nond\",c\n1,2,0\n3,x,1\n", NULL));

    /* other separators */
    BL_ASSERT_OK(f->ctx, open_csv(f, &ds, "a;b;c\n1.5;2;0\n3;4;1\n", "separator=;",
                                  "standardize=false", NULL));
    gather(f, ds, BL_SPLIT_TRAIN, 2, x, y);
    assert_float_equal(x[0], 1.5, 0);
    assert_int_equal(y[1], 1);
    bl_dataset_close(ds);
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "line 2, column 1 ('a'): expected a number, found '1,5'",
                  open_csv(f, &ds, "a;b;c\n1,5;2;0\n3;4;1\n", "separator=;", NULL));
    BL_ASSERT_OK(f->ctx, open_csv(f, &ds, "a\tb\tc\n1\t2\t0\n3\t4\t1\n", "separator=tab",
                                  "standardize=false", NULL));
    gather(f, ds, BL_SPLIT_TRAIN, 2, x, y);
    assert_float_equal(x[3], 4, 0);
    bl_dataset_close(ds);
    /* lone CR line ends */
    BL_ASSERT_OK(f->ctx, open_csv(f, &ds, "1,2,0\r3,4,1\r", NULL));
    assert_int_equal(bl_dataset_info(ds)->count[BL_SPLIT_TRAIN], 2);
    bl_dataset_close(ds);
}

static void standardize_and_regression(void **state)
{
    fx *f = *state;
    bl_dataset *ds;
    float x[16], y[8];
    /* feature 0: 1,2,3,4 (mean 2.5, std sqrt(1.25)); feature 1 constant (std → 1) */
    BL_ASSERT_OK(f->ctx, open_csv(f, &ds, "1,7,0.5\n2,7,1.5\n3,7,-2\n4,7,10\n",
                                  "task=regression", NULL));
    const bl_data_info *info = bl_dataset_info(ds);
    assert_int_equal(info->classes, 0);
    assert_int_equal(info->target_dim, 1);
    assert_null(info->class_names);
    gather(f, ds, BL_SPLIT_TRAIN, 4, x, y);
    for (int i = 0; i < 4; i++) {
        assert_float_equal(x[2 * i], (i + 1 - 2.5) / sqrt(1.25), 1e-6);
        assert_float_equal(x[2 * i + 1], 0.0, 0.0);
    }
    assert_float_equal(y[0], 0.5, 0);
    assert_float_equal(y[2], -2, 0); /* targets are not standardized */
    assert_float_equal(y[3], 10, 0);
    bl_dataset_close(ds);

    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "line 2, column 3: expected a number (regression target)",
                  open_csv(f, &ds, "1,2,3\n1,2,x\n", "task=regression", NULL));
}

static void validation_split_and_test_file(void **state)
{
    fx *f = *state;
    char text[2048];
    size_t used = 0;
    used += (size_t)snprintf(text + used, sizeof text - used, "id,label\n");
    for (int i = 0; i < 20; i++)
        used += (size_t)snprintf(text + used, sizeof text - used, "%d,%s\n", i,
                                 i % 2 ? "odd" : "even");
    write_text(f->test_path, "id,label\n100,odd\n101,even\n");
    bl_dataset *ds;
    BL_ASSERT_OK(f->ctx, open_csv(f, &ds, text, "validation=5", "seed=2", "test_file=",
                                  NULL));
    bl_dataset_close(ds);
    char test_opt[1300];
    snprintf(test_opt, sizeof test_opt, "test_file=%s", f->test_path);
    BL_ASSERT_OK(f->ctx, open_csv(f, &ds, text, "validation=5", "seed=2", "standardize=false",
                                  test_opt, NULL));
    const bl_data_info *info = bl_dataset_info(ds);
    assert_int_equal(info->count[BL_SPLIT_TRAIN], 15);
    assert_int_equal(info->count[BL_SPLIT_VALIDATION], 5);
    assert_int_equal(info->count[BL_SPLIT_TEST], 2);
    float tr[15], va[5], va2[5], te[2];
    int32_t ytr[15], yva[5], yte[2];
    gather(f, ds, BL_SPLIT_TRAIN, 15, tr, ytr);
    gather(f, ds, BL_SPLIT_VALIDATION, 5, va, yva);
    gather(f, ds, BL_SPLIT_TEST, 2, te, yte);
    bl_dataset_close(ds);
    int seen[20] = {0};
    for (int i = 0; i < 15; i++) {
        seen[(int)tr[i]]++;
        assert_int_equal(ytr[i], (int)tr[i] % 2 ? 1 : 0); /* "even" < "odd" */
    }
    for (int i = 0; i < 5; i++)
        seen[(int)va[i]]++;
    for (int i = 0; i < 20; i++)
        assert_int_equal(seen[i], 1);
    assert_float_equal(te[0], 100, 0);
    assert_int_equal(yte[0], 1);
    assert_int_equal(yte[1], 0);

    BL_ASSERT_OK(f->ctx, open_csv(f, &ds, text, "validation=0.25", "seed=2",
                                  "standardize=false", NULL));
    gather(f, ds, BL_SPLIT_VALIDATION, 5, va2, yva);
    bl_dataset_close(ds);
    assert_memory_equal(va, va2, sizeof va);
    BL_ASSERT_OK(f->ctx, open_csv(f, &ds, text, "validation=5", "seed=3", "standardize=false",
                                  NULL));
    gather(f, ds, BL_SPLIT_VALIDATION, 5, va2, yva);
    bl_dataset_close(ds);
    assert_memory_not_equal(va, va2, sizeof va);

    /* standardization from the training split only */
    BL_ASSERT_OK(f->ctx, open_csv(f, &ds, text, "validation=5", "seed=2", NULL));
    double m = 0, s2 = 0;
    for (int i = 0; i < 15; i++)
        m += tr[i];
    m /= 15;
    for (int i = 0; i < 15; i++)
        s2 += (tr[i] - m) * (tr[i] - m);
    double sd = sqrt(s2 / 15);
    float v[5];
    gather(f, ds, BL_SPLIT_VALIDATION, 5, v, yva);
    for (int i = 0; i < 5; i++)
        assert_float_equal(v[i], (va[i] - m) / sd, 1e-5);
    bl_dataset_close(ds);

    /* a test label the training file does not have */
    write_text(f->test_path, "id,label\n100,odd\n101,prime\n");
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "test.csv: line 3: label 'prime' is not one of the 2",
                  open_csv(f, &ds, text, test_opt, NULL));
    write_text(f->test_path, "id,x,label\n100,1,odd\n");
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "test.csv: line 1: expected 2 columns",
                  open_csv(f, &ds, text, test_opt, NULL));
}

static void errors(void **state)
{
    fx *f = *state;
    bl_dataset *ds;
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "data.csv: line 4: expected 3 columns (as in line 1), "
                  "found 2", open_csv(f, &ds, "a,b,c\n1,2,0\n\n3,4\n", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "data.csv: line 3, column 2 ('b'): expected a number, "
                  "found 'abc'", open_csv(f, &ds, "a,b,c\n1,2,0\n3,abc,1\n", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "line 2, column 1: expected a number, found ''",
                  open_csv(f, &ds, "1,2,0\n,4,1\n", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "found 'inf'", open_csv(f, &ds, "1,2,0\ninf,4,1\n", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "data.csv: empty", open_csv(f, &ds, "", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "data.csv: empty", open_csv(f, &ds, "\n \n\r\n", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "only a header row", open_csv(f, &ds, "a,b,c\n", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "line 2, column 2: quoted field never closed",
                  open_csv(f, &ds, "1,2,0\n3,\"4,1\n5,6,0\n", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "line 1, column 1: unexpected 'x' after a closing quote",
                  open_csv(f, &ds, "\"1\"x,2,0\n", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EFORMAT, "expected at least one feature column",
                  open_csv(f, &ds, "1\n2\n", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "no such column in", open_csv(f, &ds, "a,b,c\n1,2,0\n",
                                                                    "label=d", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "columns: a, b, c", open_csv(f, &ds, NULL, "label=d",
                                                                  NULL));
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "has no header row",
                  open_csv(f, &ds, "1,2,0\n3,4,1\n", "label=d", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "has 3 columns", open_csv(f, &ds, NULL, "label=3", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "separator", open_csv(f, &ds, NULL, "separator=ab", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "classification or regression",
                  open_csv(f, &ds, NULL, "task=ranking", NULL));
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "auto, yes or no", open_csv(f, &ds, NULL, "header=maybe",
                                                                 NULL));
    BL_ASSERT_ERR(f->ctx, BL_EOPTION, "holds out 2 of 2", open_csv(f, &ds, NULL, "validation=2",
                                                                  NULL));
    unlink(f->path);
    BL_ASSERT_ERR(f->ctx, BL_ENOTFOUND, "data.csv", open_csv(f, &ds, NULL, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(header_and_values, setup, teardown),
        cmocka_unit_test_setup_teardown(header_detection, setup, teardown),
        cmocka_unit_test_setup_teardown(string_labels_and_gaps, setup, teardown),
        cmocka_unit_test_setup_teardown(quoting_separators_line_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(standardize_and_regression, setup, teardown),
        cmocka_unit_test_setup_teardown(validation_split_and_test_file, setup, teardown),
        cmocka_unit_test_setup_teardown(errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
