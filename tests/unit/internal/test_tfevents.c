/* TensorBoard event files: CRC-32C, the exact bytes of REFERENCES.md's test vectors, and
 * written files re-read by an independent reader (bitwise CRC, own protobuf walk). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batchlab/tfevents.h"
#include "results/tfevents/tfrecord.h"
#include "testutil.h"

/* ---- an independent reader ------------------------------------------------------------------ */

/* Bit-at-a-time CRC-32C, the textbook definition the table version must agree with. */
static uint32_t crc32c_bitwise(const unsigned char *p, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc & 1u) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return crc ^ 0xFFFFFFFFu;
}

static uint32_t mask(uint32_t crc)
{
    return (uint32_t)(((crc >> 15) | (crc << 17)) + 0xA282EAD8u);
}

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
    out[2 * n] = '\0';
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 4096;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    *n = len;
    return buf;
}

typedef struct record {
    const unsigned char *data;
    size_t len;
} record;

/* Splits a file into records, checking the framing and both masked CRCs of each. */
static size_t split_records(const unsigned char *buf, size_t n, record *out, size_t cap)
{
    size_t count = 0, off = 0;
    while (off < n) {
        assert_true(n - off >= 12);
        uint64_t len = le(buf + off, 8);
        assert_int_equal(le(buf + off + 8, 4), mask(crc32c_bitwise(buf + off, 8)));
        assert_true(len <= n - off - 16);
        const unsigned char *data = buf + off + 12;
        assert_int_equal(le(data + len, 4), mask(crc32c_bitwise(data, len)));
        assert_true(count < cap);
        out[count].data = data;
        out[count].len = (size_t)len;
        count++;
        off += 16 + (size_t)len;
    }
    assert_int_equal(off, n);
    return count;
}

/* A protobuf field found by walking the wire format. */
typedef struct field {
    uint32_t number;
    int wire;
    uint64_t varint;                 /* wire 0; wire 1/5: the raw little-endian bits */
    const unsigned char *data;       /* wire 2 */
    size_t len;
} field;

static uint64_t read_varint(const unsigned char **p, const unsigned char *end)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        assert_true(*p < end);
        unsigned char c = *(*p)++;
        v |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80))
            return v;
    }
    fail_msg("varint too long");
    return 0;
}

/* The fields of a message, in order; asserts that the message parses completely. */
static size_t parse(const unsigned char *p, size_t n, field *out, size_t cap)
{
    const unsigned char *end = p + n;
    size_t count = 0;
    while (p < end) {
        assert_true(count < cap);
        field *f = &out[count++];
        memset(f, 0, sizeof *f);
        uint64_t key = read_varint(&p, end);
        f->number = (uint32_t)(key >> 3);
        f->wire = (int)(key & 7);
        switch (f->wire) {
        case 0: f->varint = read_varint(&p, end); break;
        case 1: assert_true(end - p >= 8); f->varint = le(p, 8); p += 8; break;
        case 5: assert_true(end - p >= 4); f->varint = le(p, 4); p += 4; break;
        case 2:
            f->len = (size_t)read_varint(&p, end);
            assert_true(f->len <= (size_t)(end - p));
            f->data = p;
            p += f->len;
            break;
        default: fail_msg("unexpected wire type %d", f->wire);
        }
    }
    return count;
}

static const field *find(const field *fs, size_t n, uint32_t number)
{
    for (size_t i = 0; i < n; i++)
        if (fs[i].number == number)
            return &fs[i];
    return NULL;
}

static bool field_is(const field *f, const char *s)
{
    return f && f->wire == 2 && f->len == strlen(s) && memcmp(f->data, s, f->len) == 0;
}

static double as_double(const field *f)
{
    double d;
    memcpy(&d, &f->varint, sizeof d);
    return d;
}

static float as_float(const field *f)
{
    uint32_t bits = (uint32_t)f->varint;
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

/* The newest event file of a directory (its only one in these tests). */
static void event_file_in(const char *dir, char *out, size_t cap)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep tfevents", dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char name[512] = "";
    assert_non_null(fgets(name, sizeof name, p));
    pclose(p);
    name[strcspn(name, "\n")] = '\0';
    snprintf(out, cap, "%s/%s", dir, name);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_crc32c(void **state)
{
    assert_int_equal(bl__crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(bl__crc32c(0, "", 0), 0u);
    /* continuing a CRC over pieces gives the CRC of the whole */
    assert_int_equal(bl__crc32c(bl__crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    /* the 8-byte loop against the bitwise definition at every length and alignment */
    unsigned char buf[300];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 131u + 7u);
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n + off <= sizeof buf; n += 1 + n / 16)
            assert_int_equal(bl__crc32c(0, buf + off, n), crc32c_bitwise(buf + off, n));
    assert_int_equal(bl__crc32c_mask(0xE3069283u), mask(0xE3069283u));
}

/* REFERENCES.md, "TensorBoard event files": payload, header and footer byte for byte. */
static void check_vector(const unsigned char *rec, size_t n, const char *payload,
                         const char *header, const char *footer)
{
    char got[512];
    size_t len = strlen(payload) / 2;
    assert_int_equal(n, len + 16);
    hex(rec, 12, got);
    assert_string_equal(got, header);
    hex(rec + 12, len, got);
    assert_string_equal(got, payload);
    hex(rec + 12 + len, 4, got);
    assert_string_equal(got, footer);
}

static void test_reference_vectors(void **state)
{
    unsigned char rec[128];
    size_t n = bl__tfevents_encode_version(1700000000.0, rec, sizeof rec);
    check_vector(rec, n, "0900000040fc54d9411a0d627261696e2e4576656e743a32",
                 "1800000000000000a37f4b22", "eced8f9d");

    n = bl__tfevents_encode_scalar("loss", 1, 0.5, 1700000001.0, rec, sizeof rec);
    check_vector(rec, n, "0900004040fc54d94110012a0d0a0b0a046c6f7373150000003f",
                 "1a00000000000000129bd82d", "97d67404");

    /* too small a buffer: the size needed, nothing written */
    unsigned char small[8] = {0};
    assert_int_equal(bl__tfevents_encode_scalar("loss", 1, 0.5, 1700000001.0, small, 8), n);
    assert_int_equal(small[0], 0);
    assert_int_equal(bl__tfrecord_frame("", 0, NULL, 0), 16);
}

static void test_written_file(void **state)
{
    bl_test_env *env = *state;
    bl_ctx *ctx = env->ctx;
    const char *tmp = bl_test_tmpdir("tfevents");
    char logdir[1100];
    snprintf(logdir, sizeof logdir, "%s/logs/deeper", tmp);

    bl_tfevents *w = NULL;
    BL_ASSERT_OK(ctx, bl_tfevents_open(ctx, logdir, "sweep/b=128 lr=0.1/../.", &w));
    const char *path = bl_tfevents_path(w);
    char dir[1300];
    snprintf(dir, sizeof dir, "%s/sweep/b=128_lr=0.1/__/_/events.out.tfevents.", logdir);
    assert_true(strncmp(path, dir, strlen(dir)) == 0);
    /* 10-digit time, then the host name */
    const char *t = path + strlen(dir);
    for (int i = 0; i < 10; i++)
        assert_true(t[i] >= '0' && t[i] <= '9');
    assert_true(t[10] == '.' && t[11] != '\0');

    bl_config *hp = NULL;
    BL_ASSERT_OK(ctx, bl_config_new(ctx, &hp));
    BL_ASSERT_OK(ctx, bl_config_set_int(ctx, hp, "batch", 128));
    BL_ASSERT_OK(ctx, bl_config_set_number(ctx, hp, "lr", 0.1));
    BL_ASSERT_OK(ctx, bl_config_set_bool(ctx, hp, "nesterov", true));
    BL_ASSERT_OK(ctx, bl_config_set_string(ctx, hp, "model", "mlp"));
    const int64_t hidden[2] = {256, 128};
    BL_ASSERT_OK(ctx, bl_config_set_int_list(ctx, hp, "hidden", hidden, 2));
    BL_ASSERT_OK(ctx, bl_tfevents_hparams(ctx, w, hp, NULL, 0));
    bl_config_free(hp);

    BL_ASSERT_OK(ctx, bl_tfevents_scalar(ctx, w, "custom/x", 3, 2.5, 1700000002.0));
    bl_eval_point p = {.step = 10, .samples = 1280, .epoch = 0.5, .wall = 1.0, .batch = 128,
                       .lr = 0.1, .train_loss = 0.75, .train_accuracy = NAN,
                       .val_loss = 0.5, .val_accuracy = 0.875, .gns = NAN,
                       .samples_per_sec = 1000.0};
    BL_ASSERT_OK(ctx, bl_tfevents_point(ctx, w, &p));
    /* flushed: the file holds every record already, before close */
    size_t n = 0;
    unsigned char *buf = read_all(path, &n);
    record recs[16];
    assert_int_equal(split_records(buf, n, recs, 16), 5);
    free(buf);

    BL_ASSERT_OK(ctx, bl_tfevents_end(ctx, w, BL_RUN_COMPLETED));
    char saved[2048];
    snprintf(saved, sizeof saved, "%s", path);
    BL_ASSERT_OK(ctx, bl_tfevents_close(ctx, w));

    buf = read_all(saved, &n);
    size_t count = split_records(buf, n, recs, 16);
    assert_int_equal(count, 6);
    field ev[16], sum[16], val[16], f4[16];
    size_t k;

    /* 1: file version */
    k = parse(recs[0].data, recs[0].len, ev, 16);
    assert_true(field_is(find(ev, k, 3), "brain.Event:2"));
    assert_true(as_double(find(ev, k, 1)) > 1.6e9);

    /* 2, 3: the HParams experiment and session start; 6: session end */
    static const char *const hp_tags[3] = {"_hparams_/experiment",
                                           "_hparams_/session_start_info",
                                           "_hparams_/session_end_info"};
    const size_t hp_rec[3] = {1, 2, 5};
    for (int h = 0; h < 3; h++) {
        const record *r = &recs[hp_rec[h]];
        k = parse(r->data, r->len, ev, 16);
        const field *s = find(ev, k, 5);
        assert_non_null(s);
        size_t ks = parse(s->data, s->len, sum, 16);
        assert_int_equal(ks, 1);
        size_t kv = parse(sum[0].data, sum[0].len, val, 16);
        assert_true(field_is(find(val, kv, 1), hp_tags[h]));
        assert_null(find(val, kv, 2)); /* no simple_value */
        const field *meta = find(val, kv, 9);
        assert_non_null(meta);
        size_t km = parse(meta->data, meta->len, f4, 16);
        const field *plugin = find(f4, km, 1);
        assert_non_null(plugin);
        field pd[4], hpd[4];
        size_t kp = parse(plugin->data, plugin->len, pd, 4);
        assert_true(field_is(find(pd, kp, 1), "hparams"));
        const field *content = find(pd, kp, 2);
        assert_non_null(content);
        size_t kh = parse(content->data, content->len, hpd, 4);
        assert_int_equal(kh, 1);                      /* version 0 left out, one oneof field */
        assert_int_equal(hpd[0].number, (uint32_t)(2 + h));
        field body[32];
        size_t kb = parse(hpd[0].data, hpd[0].len, body, 32);
        if (h == 0) {                                 /* Experiment */
            size_t hparams = 0, metrics = 0;
            for (size_t i = 0; i < kb; i++) {
                field info[4];
                if (body[i].number == 4) {            /* HParamInfo{name 1, type 4} */
                    size_t ki = parse(body[i].data, body[i].len, info, 4);
                    const field *type = find(info, ki, 4);
                    assert_non_null(type);
                    if (field_is(find(info, ki, 1), "lr"))
                        assert_int_equal(type->varint, 3);
                    if (field_is(find(info, ki, 1), "nesterov"))
                        assert_int_equal(type->varint, 2);
                    if (field_is(find(info, ki, 1), "hidden"))
                        assert_int_equal(type->varint, 1);
                    hparams++;
                } else if (body[i].number == 5) {     /* MetricInfo{name 1{tag 2}} */
                    size_t ki = parse(body[i].data, body[i].len, info, 4);
                    field name[2];
                    const field *nf = find(info, ki, 1);
                    assert_non_null(nf);
                    size_t kn = parse(nf->data, nf->len, name, 2);
                    assert_true(field_is(find(name, kn, 2), bl_tfevents_metric_tags[metrics]));
                    metrics++;
                }
            }
            assert_int_equal(hparams, 5);
            assert_int_equal(metrics, 4);
        } else if (h == 1) {                          /* SessionStartInfo */
            size_t entries = 0;
            for (size_t i = 0; i < kb; i++) {
                if (body[i].number != 1)
                    continue;
                field entry[2], value[2];
                size_t ke = parse(body[i].data, body[i].len, entry, 2);
                const field *v = find(entry, ke, 2);
                assert_non_null(v);
                size_t kv2 = parse(v->data, v->len, value, 2);
                assert_int_equal(kv2, 1);
                if (field_is(find(entry, ke, 1), "batch")) {
                    assert_int_equal(value[0].number, 2);
                    assert_true(as_double(&value[0]) == 128.0);
                } else if (field_is(find(entry, ke, 1), "nesterov")) {
                    assert_int_equal(value[0].number, 4);
                    assert_int_equal(value[0].varint, 1);
                } else if (field_is(find(entry, ke, 1), "model")) {
                    assert_true(value[0].number == 3 && field_is(&value[0], "mlp"));
                } else if (field_is(find(entry, ke, 1), "hidden")) {
                    assert_true(value[0].number == 3 && field_is(&value[0], "256,128"));
                }
                entries++;
            }
            assert_int_equal(entries, 5);
            assert_non_null(find(body, kb, 5));        /* start_time_secs */
        } else {                                      /* SessionEndInfo */
            const field *st = find(body, kb, 1);
            assert_non_null(st);
            assert_int_equal(st->varint, 1);           /* STATUS_SUCCESS */
            assert_non_null(find(body, kb, 2));
        }
    }

    /* 4: the custom scalar */
    k = parse(recs[3].data, recs[3].len, ev, 16);
    assert_true(as_double(find(ev, k, 1)) == 1700000002.0);
    assert_int_equal(find(ev, k, 2)->varint, 3);

    /* 5: the point: step 10, NaN values skipped */
    k = parse(recs[4].data, recs[4].len, ev, 16);
    assert_int_equal(find(ev, k, 2)->varint, 10);
    const field *s = find(ev, k, 5);
    assert_non_null(s);
    size_t ks = parse(s->data, s->len, sum, 16);
    static const char *const want[] = {"train/loss", "val/loss", "val/accuracy",
                                       "schedule/batch_size", "schedule/lr",
                                       "throughput/samples_per_sec", "progress/samples"};
    static const float want_v[] = {0.75f, 0.5f, 0.875f, 128.0f, 0.1f, 1000.0f, 1280.0f};
    assert_int_equal(ks, 7);
    for (size_t i = 0; i < ks; i++) {
        size_t kv = parse(sum[i].data, sum[i].len, val, 16);
        assert_true(field_is(find(val, kv, 1), want[i]));
        assert_true(as_float(find(val, kv, 2)) == want_v[i]);
    }
    free(buf);
}

/* The number of entries of dir whose name contains "tfevents". */
static int event_files_in(const char *dir)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c tfevents", dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int n = -1;
    assert_int_equal(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

/* Issue 14, found 7: two writers of one run name (two runs of one label, or unlabelled runs
 * named after the same second) each claim a directory of their own — TensorBoard draws every
 * directory as one run — and each directory holds one event file. */
static void test_same_name_own_directories(void **state)
{
    bl_test_env *env = *state;
    const char *tmp = bl_test_tmpdir("tfevents_twice");
    bl_tfevents *a = NULL, *b = NULL, *c = NULL;
    char dir[1200], file[2048];
    FILE *f = NULL;
    BL_ASSERT_OK(env->ctx, bl_tfevents_open(env->ctx, tmp, "run", &a));
    BL_ASSERT_OK(env->ctx, bl_tfevents_open(env->ctx, tmp, "run", &b));
    assert_string_not_equal(bl_tfevents_path(a), bl_tfevents_path(b));
    static const char *const dirs[] = {"run", "run-2"};
    for (int i = 0; i < 2; i++) {
        snprintf(dir, sizeof dir, "%s/%s", tmp, dirs[i]);
        assert_int_equal(event_files_in(dir), 1);
        event_file_in(dir, file, sizeof file);
        assert_string_equal(file, bl_tfevents_path(i == 0 ? a : b));
    }
    BL_ASSERT_OK(env->ctx, bl_tfevents_close(env->ctx, a));
    BL_ASSERT_OK(env->ctx, bl_tfevents_close(env->ctx, b));
    /* a nested name claims its last component; a file in the way is passed over too */
    snprintf(dir, sizeof dir, "%s/nested", tmp);
    assert_int_equal(mkdir(dir, 0777), 0);
    snprintf(dir, sizeof dir, "%s/nested/taken", tmp);
    f = fopen(dir, "w");
    assert_non_null(f);
    fclose(f);
    BL_ASSERT_OK(env->ctx, bl_tfevents_open(env->ctx, tmp, "nested/taken", &c));
    snprintf(dir, sizeof dir, "%s/nested/taken-2/events.out.tfevents.", tmp);
    assert_true(strncmp(bl_tfevents_path(c), dir, strlen(dir)) == 0);
    BL_ASSERT_OK(env->ctx, bl_tfevents_close(env->ctx, c));
    /* no run name: the files go into the log directory itself */
    BL_ASSERT_OK(env->ctx, bl_tfevents_open(env->ctx, tmp, NULL, &a));
    event_file_in(tmp, file, sizeof file);
    assert_string_equal(file, bl_tfevents_path(a));
    BL_ASSERT_OK(env->ctx, bl_tfevents_close(env->ctx, a));
}

static void test_bad_directory(void **state)
{
    bl_test_env *env = *state;
    bl_ctx *ctx = env->ctx;
    const char *tmp = bl_test_tmpdir("tfevents_bad");
    char file[1100], logdir[1200];
    snprintf(file, sizeof file, "%s/plainfile", tmp);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);

    bl_tfevents *w = (bl_tfevents *)&w; /* untouched on error */
    snprintf(logdir, sizeof logdir, "%s/logs", file);
    BL_ASSERT_ERR(ctx, BL_EIO, file, bl_tfevents_open(ctx, logdir, "run", &w));
    assert_true(w == (bl_tfevents *)&w);
    BL_ASSERT_ERR(ctx, BL_EIO, file, bl_tfevents_open(ctx, file, "run", &w));
    BL_ASSERT_ERR(ctx, BL_EIO, "a file of that name", bl_tfevents_open(ctx, file, NULL, &w));
    BL_ASSERT_ERR(ctx, BL_EINVAL, "log directory", bl_tfevents_open(ctx, "", "run", &w));
    assert_true(w == (bl_tfevents *)&w);

    if (geteuid() != 0) {                             /* root may write anywhere */
        char ro[1100];
        snprintf(ro, sizeof ro, "%s/readonly", tmp);
        assert_int_equal(mkdir(ro, 0555), 0);
        BL_ASSERT_ERR(ctx, BL_EIO, ro, bl_tfevents_open(ctx, ro, "run", &w));
    }
    assert_int_equal(bl_tfevents_close(ctx, NULL), BL_OK);
}

/* A write that fails (here: past the file size limit, EFBIG) names the file, and the writer
 * refuses further records rather than appending after a partial one. */
static void test_write_failure_names_file(void **state)
{
    bl_test_env *env = *state;
    bl_ctx *ctx = env->ctx;
    const char *tmp = bl_test_tmpdir("tfevents_full");
    bl_tfevents *w = NULL;
    BL_ASSERT_OK(ctx, bl_tfevents_open(ctx, tmp, "r", &w));
    BL_ASSERT_ERR(ctx, BL_EINVAL, bl_tfevents_path(w), bl_tfevents_scalar(ctx, w, "", 0, 1, 0));
    const char *bad[2] = {"val/loss", ""};
    BL_ASSERT_ERR(ctx, BL_EINVAL, "metric tag 2", bl_tfevents_hparams(ctx, w, NULL, bad, 2));

    struct rlimit old, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 100;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    bl_eval_point p = {.step = 1, .samples = 64, .batch = 64, .lr = 0.1, .train_loss = 1,
                       .train_accuracy = 0.5, .val_loss = 1, .val_accuracy = 0.5, .gns = 10,
                       .samples_per_sec = 100};
    int rc1 = bl_tfevents_point(ctx, w, &p);
    char msg1[2048];
    snprintf(msg1, sizeof msg1, "%s", bl_errmsg(ctx));
    int rc2 = bl_tfevents_scalar(ctx, w, "x", 2, 1.0, 0);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);

    assert_int_equal(rc1, BL_EIO);
    assert_true(bl_test_contains(msg1, bl_tfevents_path(w)));
    assert_int_equal(rc2, BL_EIO);
    assert_true(bl_test_contains(bl_errmsg(ctx), "an earlier write failed"));
    bl_tfevents_close(ctx, w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_reference_vectors),
        cmocka_unit_test(test_written_file),
        cmocka_unit_test(test_same_name_own_directories),
        cmocka_unit_test(test_bad_directory),
        cmocka_unit_test(test_write_failure_names_file),
    };
    return cmocka_run_group_tests(tests, bl_test_setup, bl_test_teardown);
}
