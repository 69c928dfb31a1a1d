/* Training-state snapshots: the byte image (batchlab/snapshot.h for the format), and capture
 * from and restore into a run (engine.h, bl__run_vars). Files: snapshot_file.c. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/grow.h"
#include "engine/engine.h"

struct bl_snapshot {
    unsigned char *data;     /* header + payload */
    size_t len, cap;
    char *name;              /* for messages: the file, or NULL ("snapshot") */
};

static const unsigned char MAGIC[8] = {'B', 'L', 'S', 'N', 'A', 'P', '\r', '\n'};
enum { HEADER_BYTES = 32 };

/* Section tags, four characters read as a little-endian u32. */
#define TAG(a, b, c, d)                                                                       \
    ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define T_RUN TAG('R', 'U', 'N', '1')  /* counters, cadence, losses, divergence, last point */
#define T_TAG TAG('T', 'A', 'G', ' ')  /* the caller's text (configuration) */
#define T_PARM TAG('P', 'A', 'R', 'M') /* parameters, floats */
#define T_NSTA TAG('N', 'S', 'T', 'A') /* net state (batch-norm statistics), floats */
#define T_LAYR TAG('L', 'A', 'Y', 'R') /* per layer: seed, counter */
#define T_OPTM TAG('O', 'P', 'T', 'M') /* optimizer: kind, steps, buffers */
#define T_SHUF TAG('S', 'H', 'U', 'F') /* shuffle stream before the epoch's permutation */
#define T_GNS TAG('G', 'N', 'S', ' ')  /* noise-scale EMAs */
#define T_SCHD TAG('S', 'C', 'H', 'D') /* scheduler: plugin name, state bytes */
#define T_STIM TAG('S', 'T', 'I', 'M') /* step-time ring */
#define T_HIST TAG('H', 'I', 'S', 'T') /* evaluation points */
#define T_TRGT TAG('T', 'R', 'G', 'T') /* target crossing and largest batch so far */

static bool host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Reverses each 4-byte word of p[0 .. 4n) (floats on a big-endian host). */
static void swap32(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++, p += 4) {
        unsigned char t = p[0];
        p[0] = p[3];
        p[3] = t;
        t = p[1];
        p[1] = p[2];
        p[2] = t;
    }
}

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt k = n > (size_t)UINT_MAX ? UINT_MAX : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

static const char *name_of(const bl_snapshot *s)
{
    return s && s->name ? s->name : "snapshot";
}

/* ---- writing ------------------------------------------------------------------------------- */

typedef struct enc {
    bl_snapshot *s;
    bool oom;
} enc;

static unsigned char *reserve(enc *e, size_t n)
{
    bl_snapshot *s = e->s;
    if (e->oom)
        return NULL;
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n)
            cap *= 2;
        unsigned char *d = realloc(s->data, cap);
        if (!d) {
            e->oom = true;
            return NULL;
        }
        s->data = d;
        s->cap = cap;
    }
    unsigned char *p = s->data + s->len;
    s->len += n;
    return p;
}

static void put_u64(enc *e, uint64_t v)
{
    unsigned char *p = reserve(e, 8);
    for (int b = 0; p && b < 8; b++)
        p[b] = (unsigned char)(v >> (8 * b));
}

static void put_u32(enc *e, uint32_t v)
{
    unsigned char *p = reserve(e, 4);
    for (int b = 0; p && b < 4; b++)
        p[b] = (unsigned char)(v >> (8 * b));
}

static void put_i64(enc *e, int64_t v)
{
    put_u64(e, (uint64_t)v);
}

static void put_f64(enc *e, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    put_u64(e, u);
}

static void put_bytes(enc *e, const void *p, size_t n)
{
    put_u64(e, n);
    unsigned char *d = reserve(e, n);
    if (d && n)
        memcpy(d, p, n);
}

/* Starts a section; returns the offset of its length field. */
static size_t section(enc *e, uint32_t tag)
{
    put_u32(e, tag);
    size_t at = e->s->len;
    put_u64(e, 0);
    return at;
}

static void end_section(enc *e, size_t at)
{
    if (e->oom)
        return;
    uint64_t n = e->s->len - at - 8;
    for (int b = 0; b < 8; b++)
        e->s->data[at + (size_t)b] = (unsigned char)(n >> (8 * b));
}

/* count floats of device memory `src`, little-endian. */
static int put_device_floats(bl_ctx *ctx, enc *e, bl_device *dev, const float *src, size_t count)
{
    put_u64(e, count);
    unsigned char *p = reserve(e, count * 4);
    if (!p)
        return BL_OK; /* oom reported by the caller */
    if (count == 0)
        return BL_OK;
    int rc = bl_device_download(ctx, dev, p, src, count * sizeof(float));
    if (rc == BL_OK && !host_is_little_endian())
        swap32(p, count);
    return rc;
}

static void put_point(enc *e, const bl_eval_point *p)
{
    put_i64(e, p->step);
    put_i64(e, p->samples);
    put_i64(e, p->batch);
    const double d[9] = {p->epoch,          p->wall,     p->lr,
                         p->train_loss,     p->train_accuracy, p->val_loss,
                         p->val_accuracy,   p->gns,      p->samples_per_sec};
    for (int i = 0; i < 9; i++)
        put_f64(e, d[i]);
}

bl_snapshot *bl__snapshot_new(void)
{
    return calloc(1, sizeof(bl_snapshot));
}

int bl__snapshot_capture(bl_ctx *ctx, const bl__run_vars *v, const char *tag, bl_snapshot *snap)
{
    enc e = {snap, false};
    snap->len = 0;
    reserve(&e, HEADER_BYTES);
    bl_device *dev = bl_net_device(v->net);
    size_t at;
    int rc = BL_OK;

    at = section(&e, T_RUN);
    const int64_t ints[] = {
        (int64_t)bl_net_num_params(v->net), (int64_t)bl_net_num_state(v->net),
        bl_net_num_layers(v->net), v->n_train,
        v->state.step, v->state.epoch, v->state.samples, v->state.batch,
        v->pos, v->epoch, v->loss_count, v->point_samples,
        v->ref_count, v->win_count, v->win_from, v->chance_run,
        v->last_asked, v->have_last, v->ref_done, v->diverged, v->correct_sum};
    put_u32(&e, (uint32_t)(sizeof ints / sizeof ints[0]));
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        put_i64(&e, ints[i]);
    const double dbl[] = {v->state.epoch_progress, v->state.lr, v->state.wall,
                          v->train_time, v->eval_time, v->loss_sum, v->point_time,
                          v->next_eval, v->ref_loss_sum, v->win_loss_sum};
    put_u32(&e, (uint32_t)(sizeof dbl / sizeof dbl[0]));
    for (size_t i = 0; i < sizeof dbl / sizeof dbl[0]; i++)
        put_f64(&e, dbl[i]);
    put_point(&e, &v->last);
    end_section(&e, at);

    at = section(&e, T_TAG);
    put_bytes(&e, tag ? tag : "", (tag ? strlen(tag) : 0) + 1); /* with its NUL */
    end_section(&e, at);

    at = section(&e, T_PARM);
    rc = put_device_floats(ctx, &e, dev, bl_net_params(v->net), bl_net_num_params(v->net));
    end_section(&e, at);
    if (rc == BL_OK) {
        at = section(&e, T_NSTA);
        rc = put_device_floats(ctx, &e, dev, bl_net_state(v->net), bl_net_num_state(v->net));
        end_section(&e, at);
    }

    at = section(&e, T_LAYR);
    int layers = bl_net_num_layers(v->net);
    put_u64(&e, (uint64_t)layers);
    for (int i = 0; i < layers; i++) {
        const bl_layer *l = bl_net_layer(v->net, i);
        put_u64(&e, l->seed);
        put_u64(&e, l->counter);
    }
    end_section(&e, at);

    if (rc == BL_OK) {
        at = section(&e, T_OPTM);
        size_t n = bl_optim_state_size(v->opt);
        put_u32(&e, (uint32_t)bl_optim_get_config(v->opt)->kind);
        put_i64(&e, bl_optim_steps(v->opt));
        put_u64(&e, n);
        unsigned char *p = reserve(&e, n * 4);
        /* the save writes host floats: straight into the image when it is aligned for them */
        bool aligned = ((uintptr_t)p % _Alignof(float)) == 0;
        float *tmp = p && !aligned ? malloc(n * sizeof *tmp + 1) : NULL;
        if (p && !aligned && !tmp)
            e.oom = true;
        if (p && (aligned || tmp)) {
            rc = bl_optim_save(ctx, v->opt, tmp ? tmp : (float *)(void *)p, NULL);
            if (tmp)
                memcpy(p, tmp, n * 4);
            if (!host_is_little_endian())
                swap32(p, n);
        }
        free(tmp);
        end_section(&e, at);
    }

    at = section(&e, T_SHUF);
    put_u64(&e, v->loader->epoch_rng.state);
    put_u64(&e, v->loader->epoch_rng.inc);
    end_section(&e, at);

    at = section(&e, T_GNS);
    put_f64(&e, v->gns->ema_g2);
    put_f64(&e, v->gns->ema_trace);
    put_i64(&e, v->gns->updates);
    end_section(&e, at);

    if (rc == BL_OK && v->scheduler) {
        size_t need = 0;
        rc = bl_scheduler_save(ctx, v->scheduler, NULL, 0, &need);
        const char *pname = bl_scheduler_plugin(v->scheduler)->name;
        if (rc == BL_OK) {
            at = section(&e, T_SCHD);
            put_bytes(&e, pname, strlen(pname));
            put_u64(&e, need);
            unsigned char *p = reserve(&e, need);
            size_t got = need;
            if (p && need)
                rc = bl_scheduler_save(ctx, v->scheduler, p, need, &got);
            if (rc == BL_OK && got != need)
                rc = bl_error(ctx, BL_EPLUGIN, "scheduler %s: save asked for %zu bytes, then "
                              "wrote %zu", pname, need, got);
            end_section(&e, at);
        }
    }

    at = section(&e, T_STIM);
    const bl__step_times *st = v->step_times;
    put_u64(&e, st->cap);
    put_u64(&e, st->n);
    put_u64(&e, st->next);
    for (size_t i = 0; i < st->n; i++) {
        put_f64(&e, st->t[i]);
        put_i64(&e, st->batch[i]);
    }
    end_section(&e, at);

    at = section(&e, T_HIST);
    put_u64(&e, v->res->history_count);
    for (size_t i = 0; i < v->res->history_count; i++)
        put_point(&e, &v->res->history[i]);
    end_section(&e, at);

    at = section(&e, T_TRGT);
    put_i64(&e, v->res->steps_to_target);
    put_i64(&e, v->res->samples_to_target);
    put_i64(&e, v->res->steps_to_target_error);
    put_f64(&e, v->res->wall_time_to_target);
    put_f64(&e, v->res->epochs_to_target);
    put_i64(&e, v->res->max_batch_used);
    end_section(&e, at);

    if (e.oom)
        return bl_error(ctx, BL_ENOMEM, "snapshot: out of memory (%zu bytes)", snap->len);
    if (rc != BL_OK)
        return bl_error_prefix(ctx, "snapshot at step %" PRId64, v->state.step);

    /* header */
    unsigned char *h = snap->data;
    uint64_t payload = snap->len - HEADER_BYTES;
    memcpy(h, MAGIC, 8);
    const uint32_t w[2] = {BL_SNAPSHOT_VERSION, 0};
    for (int k = 0; k < 2; k++)
        for (int b = 0; b < 4; b++)
            h[8 + 4 * k + b] = (unsigned char)(w[k] >> (8 * b));
    for (int b = 0; b < 8; b++)
        h[16 + b] = (unsigned char)(payload >> (8 * b));
    uint32_t c = crc32_of(h + HEADER_BYTES, (size_t)payload);
    for (int b = 0; b < 4; b++)
        h[24 + b] = (unsigned char)(c >> (8 * b));
    c = crc32_of(h, 28);
    for (int b = 0; b < 4; b++)
        h[28 + b] = (unsigned char)(c >> (8 * b));
    return BL_OK;
}

/* ---- reading ------------------------------------------------------------------------------- */

typedef struct dec {
    const unsigned char *p;
    size_t n, at;
    bool bad;
} dec;

static const unsigned char *take(dec *d, size_t n)
{
    if (d->bad || n > d->n - d->at) {
        d->bad = true;
        return NULL;
    }
    const unsigned char *p = d->p + d->at;
    d->at += n;
    return p;
}

static uint64_t get_u64(dec *d)
{
    const unsigned char *p = take(d, 8);
    uint64_t v = 0;
    for (int b = 0; p && b < 8; b++)
        v |= (uint64_t)p[b] << (8 * b);
    return v;
}

static uint32_t get_u32(dec *d)
{
    const unsigned char *p = take(d, 4);
    uint32_t v = 0;
    for (int b = 0; p && b < 4; b++)
        v |= (uint32_t)p[b] << (8 * b);
    return v;
}

static int64_t get_i64(dec *d)
{
    return (int64_t)get_u64(d);
}

static double get_f64(dec *d)
{
    uint64_t u = get_u64(d);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

static void get_point(dec *d, bl_eval_point *p)
{
    p->step = get_i64(d);
    p->samples = get_i64(d);
    p->batch = get_i64(d);
    p->epoch = get_f64(d);
    p->wall = get_f64(d);
    p->lr = get_f64(d);
    p->train_loss = get_f64(d);
    p->train_accuracy = get_f64(d);
    p->val_loss = get_f64(d);
    p->val_accuracy = get_f64(d);
    p->gns = get_f64(d);
    p->samples_per_sec = get_f64(d);
}

/* The section `tag` of a checked image as a decoder over its bytes; false when absent. */
static bool find_section(const bl_snapshot *s, uint32_t tag, dec *out)
{
    dec d = {s->data + HEADER_BYTES, s->len - HEADER_BYTES, 0, false};
    while (d.at < d.n) {
        uint32_t t = get_u32(&d);
        uint64_t n = get_u64(&d);
        const unsigned char *p = take(&d, (size_t)n);
        if (d.bad)
            return false;
        if (t == tag) {
            *out = (dec){p, (size_t)n, 0, false};
            return true;
        }
    }
    return false;
}

/* Checks header, checksums and the section structure of data[0 .. len). */
static int check_image(bl_ctx *ctx, const unsigned char *data, size_t len, const char *name)
{
    if (len < HEADER_BYTES)
        return bl_error(ctx, BL_EFORMAT, "%s: truncated: %zu bytes, shorter than the %d-byte "
                        "header", name, len, HEADER_BYTES);
    if (memcmp(data, MAGIC, 8) != 0)
        return bl_error(ctx, BL_EFORMAT, "%s: not a batchlab snapshot (no BLSNAP magic)", name);
    dec h = {data, HEADER_BYTES, 8, false};
    uint32_t version = get_u32(&h), flags = get_u32(&h);
    uint64_t payload = get_u64(&h);
    uint32_t crc = get_u32(&h), hcrc = get_u32(&h);
    if (crc32_of(data, 28) != hcrc)
        return bl_error(ctx, BL_EFORMAT, "%s: damaged header (checksum mismatch)", name);
    if (version != BL_SNAPSHOT_VERSION)
        return bl_error(ctx, BL_EFORMAT, "%s: format version %" PRIu32 ", this build reads "
                        "version %d", name, version, BL_SNAPSHOT_VERSION);
    if (flags != 0)
        return bl_error(ctx, BL_EFORMAT, "%s: unknown flags 0x%" PRIx32, name, flags);
    if (payload != len - HEADER_BYTES)
        return bl_error(ctx, BL_EFORMAT, "%s: %s: the header promises %" PRIu64 " payload "
                        "bytes, the file has %zu", name,
                        payload > len - HEADER_BYTES ? "truncated" : "trailing bytes",
                        payload, len - HEADER_BYTES);
    if (crc32_of(data + HEADER_BYTES, (size_t)payload) != crc)
        return bl_error(ctx, BL_EFORMAT, "%s: damaged: the payload checksum does not match",
                        name);
    dec d = {data + HEADER_BYTES, (size_t)payload, 0, false};
    while (d.at < d.n && !d.bad) {
        get_u32(&d);
        uint64_t n = get_u64(&d);
        if (!d.bad && n > d.n - d.at)
            d.bad = true;
        take(&d, (size_t)n);
    }
    if (d.bad)
        return bl_error(ctx, BL_EFORMAT, "%s: malformed: a section runs past the end", name);
    return BL_OK;
}

int bl_snapshot_from_bytes(bl_ctx *ctx, const void *bytes, size_t len, const char *name,
                           bl_snapshot **out)
{
    if (!bytes || !out)
        return bl_error(ctx, BL_EINVAL, "bl_snapshot_from_bytes: NULL argument");
    const char *nm = name ? name : "snapshot";
    int rc = check_image(ctx, bytes, len, nm);
    if (rc != BL_OK)
        return rc;
    bl_snapshot *s = calloc(1, sizeof *s);
    if (s) {
        s->data = malloc(len);
        s->name = name ? strdup(name) : NULL;
    }
    if (!s || !s->data || (name && !s->name)) {
        bl_snapshot_free(s);
        return bl_error(ctx, BL_ENOMEM, "%s: out of memory", nm);
    }
    memcpy(s->data, bytes, len);
    s->len = s->cap = len;
    *out = s;
    return BL_OK;
}

int bl_snapshot_copy(bl_ctx *ctx, const bl_snapshot *src, bl_snapshot **out)
{
    if (!src || !out || src->len < HEADER_BYTES)
        return bl_error(ctx, BL_EINVAL, "bl_snapshot_copy: NULL or empty snapshot");
    bl_snapshot *s = calloc(1, sizeof *s);
    if (s) {
        s->data = malloc(src->len);
        s->name = src->name ? strdup(src->name) : NULL;
    }
    if (!s || !s->data || (src->name && !s->name)) {
        bl_snapshot_free(s);
        return bl_error(ctx, BL_ENOMEM, "snapshot copy: out of memory (%zu bytes)", src->len);
    }
    memcpy(s->data, src->data, src->len);
    s->len = s->cap = src->len;
    *out = s;
    return BL_OK;
}

void bl_snapshot_free(bl_snapshot *snap)
{
    if (!snap)
        return;
    free(snap->data);
    free(snap->name);
    free(snap);
}

const void *bl_snapshot_bytes(const bl_snapshot *snap, size_t *len)
{
    if (len)
        *len = snap ? snap->len : 0;
    return snap ? snap->data : NULL;
}

const char *bl_snapshot_tag(const bl_snapshot *snap)
{
    dec d;
    if (!snap || !find_section(snap, T_TAG, &d))
        return "";
    uint64_t n = get_u64(&d);
    const unsigned char *p = take(&d, (size_t)n);
    /* stored with its NUL; an image without one (or with one inside) has no usable tag */
    if (!p || n == 0 || p[n - 1] != '\0' || memchr(p, '\0', (size_t)n) != p + n - 1)
        return "";
    return (const char *)p;
}

/* The RUN1 section's fixed lists: the counts every snapshot has; ints past RUN_INTS were
 * appended later (read when present, -1 in older snapshots: not known): RUN_INTS_NOW in all. */
enum { RUN_INTS = 20, RUN_INTS_NOW = 21, RUN_DOUBLES = 10 };

static int read_run(bl_ctx *ctx, const bl_snapshot *s, int64_t *ints, double *dbl,
                    bl_eval_point *last)
{
    dec d;
    if (!find_section(s, T_RUN, &d))
        return bl_error(ctx, BL_EFORMAT, "%s: no run section (weights only?)", name_of(s));
    uint32_t ni = get_u32(&d);
    if (d.bad || ni < RUN_INTS)
        return bl_error(ctx, BL_EFORMAT, "%s: malformed run section", name_of(s));
    for (uint32_t i = RUN_INTS; i < RUN_INTS_NOW; i++)
        ints[i] = -1;
    for (uint32_t i = 0; i < ni; i++) {
        int64_t x = get_i64(&d);
        if (i < RUN_INTS_NOW)
            ints[i] = x;
    }
    uint32_t nd = get_u32(&d);
    if (d.bad || nd < RUN_DOUBLES)
        return bl_error(ctx, BL_EFORMAT, "%s: malformed run section", name_of(s));
    for (uint32_t i = 0; i < nd; i++) {
        double x = get_f64(&d);
        if (i < RUN_DOUBLES)
            dbl[i] = x;
    }
    get_point(&d, last);
    if (d.bad)
        return bl_error(ctx, BL_EFORMAT, "%s: malformed run section", name_of(s));
    return BL_OK;
}

int bl_snapshot_get_info(bl_ctx *ctx, const bl_snapshot *snap, bl_snapshot_info *out)
{
    if (!snap || !out)
        return bl_error(ctx, BL_EINVAL, "bl_snapshot_get_info: NULL argument");
    int64_t ints[RUN_INTS_NOW];
    double dbl[RUN_DOUBLES];
    bl_eval_point last;
    int rc = read_run(ctx, snap, ints, dbl, &last);
    if (rc != BL_OK)
        return rc;
    memset(out, 0, sizeof *out);
    out->n_params = ints[0];
    out->step = ints[4];
    out->epoch = ints[5];
    out->samples = ints[6];
    out->batch = ints[7];
    out->pos = ints[8];
    out->epoch_progress = dbl[0];
    out->lr = dbl[1];
    out->wall = dbl[2];
    dec d;
    if (find_section(snap, T_HIST, &d))
        out->history_count = (int64_t)get_u64(&d);
    if (find_section(snap, T_OPTM, &d))
        snprintf(out->optimizer, sizeof out->optimizer, "%s",
                 bl_optim_name((bl_optim_kind)get_u32(&d)));
    return BL_OK;
}

/* The float section `tag` (u64 count, then floats) into host memory `out` of `count`. */
static int read_floats(bl_ctx *ctx, const bl_snapshot *s, uint32_t tag, const char *what,
                       float *out, size_t count)
{
    dec d;
    if (!find_section(s, tag, &d))
        return bl_error(ctx, BL_EFORMAT, "%s: no %s section", name_of(s), what);
    uint64_t n = get_u64(&d);
    if (n != count)
        return bl_error(ctx, BL_EINVAL, "%s: %" PRIu64 " %s, the net has %zu (another model?)",
                        name_of(s), n, what, count);
    const unsigned char *p = take(&d, count * 4);
    if (!p)
        return bl_error(ctx, BL_EFORMAT, "%s: malformed %s section", name_of(s), what);
    memcpy(out, p, count * 4);
    if (!host_is_little_endian())
        swap32((unsigned char *)out, count);
    return BL_OK;
}

/* Uploads the float section `tag` to device memory `dst` of `count` floats. */
static int upload_floats(bl_ctx *ctx, const bl_snapshot *s, uint32_t tag, const char *what,
                         bl_device *dev, float *dst, size_t count)
{
    if (count == 0) {
        float none;
        return read_floats(ctx, s, tag, what, &none, 0);
    }
    float *h = malloc(count * sizeof *h);
    if (!h)
        return bl_error(ctx, BL_ENOMEM, "%s: out of memory", name_of(s));
    int rc = read_floats(ctx, s, tag, what, h, count);
    if (rc == BL_OK)
        rc = bl_device_upload(ctx, dev, dst, h, count * sizeof *h);
    free(h);
    return rc;
}

int bl_snapshot_history(bl_ctx *ctx, const bl_snapshot *snap, bl_eval_point **points,
                        size_t *count)
{
    if (!snap || !points || !count)
        return bl_error(ctx, BL_EINVAL, "bl_snapshot_history: NULL argument");
    dec d;
    if (!find_section(snap, T_HIST, &d))
        return bl_error(ctx, BL_EFORMAT, "%s: no history section", name_of(snap));
    uint64_t n = get_u64(&d);
    if (d.bad || n > d.n / 8)
        return bl_error(ctx, BL_EFORMAT, "%s: malformed history section", name_of(snap));
    bl_eval_point *p = n ? malloc((size_t)n * sizeof *p) : NULL;
    if (n && !p)
        return bl_error(ctx, BL_ENOMEM, "%s: out of memory", name_of(snap));
    for (uint64_t i = 0; i < n; i++)
        get_point(&d, &p[i]);
    if (d.bad) {
        free(p);
        return bl_error(ctx, BL_EFORMAT, "%s: malformed history section", name_of(snap));
    }
    *points = p;
    *count = (size_t)n;
    return BL_OK;
}

int bl_snapshot_params(bl_ctx *ctx, const bl_snapshot *snap, float *out, size_t count)
{
    if (!snap || (!out && count))
        return bl_error(ctx, BL_EINVAL, "bl_snapshot_params: NULL argument");
    return read_floats(ctx, snap, T_PARM, "parameters", out, count);
}

int bl_snapshot_load_weights(bl_ctx *ctx, const bl_snapshot *snap, bl_net *net)
{
    if (!snap || !net)
        return bl_error(ctx, BL_EINVAL, "bl_snapshot_load_weights: NULL argument");
    bl_device *dev = bl_net_device(net);
    int rc = upload_floats(ctx, snap, T_PARM, "parameters", dev, bl_net_params(net),
                           bl_net_num_params(net));
    if (rc == BL_OK)
        rc = upload_floats(ctx, snap, T_NSTA, "state values", dev, bl_net_state(net),
                           bl_net_num_state(net));
    return rc;
}

int bl__snapshot_restore(bl_ctx *ctx, const bl_snapshot *s, bl__run_vars *v)
{
    const char *nm = name_of(s);
    int64_t ints[RUN_INTS_NOW];
    double dbl[RUN_DOUBLES];
    bl_eval_point last;
    int rc = read_run(ctx, s, ints, dbl, &last);
    if (rc != BL_OK)
        return rc;
    /* fit: model and training set (the optimizer below) */
    if (ints[0] != (int64_t)bl_net_num_params(v->net) ||
        ints[1] != (int64_t)bl_net_num_state(v->net) || ints[2] != bl_net_num_layers(v->net))
        return bl_error(ctx, BL_EINVAL,
                        "%s: the snapshot's model has %" PRId64 " parameters, %" PRId64
                        " state values and %" PRId64 " layers; this run's %zu, %zu and %d "
                        "(another model?)",
                        nm, ints[0], ints[1], ints[2], bl_net_num_params(v->net),
                        bl_net_num_state(v->net), bl_net_num_layers(v->net));
    if (ints[3] != v->n_train)
        return bl_error(ctx, BL_EINVAL, "%s: the snapshot's training set has %" PRId64
                        " samples, this run's %" PRId64 " (another dataset?)",
                        nm, ints[3], v->n_train);
    dec d;
    if (!find_section(s, T_OPTM, &d))
        return bl_error(ctx, BL_EFORMAT, "%s: no optimizer section", nm);
    bl_optim_kind kind = (bl_optim_kind)get_u32(&d);
    int64_t osteps = get_i64(&d);
    uint64_t on = get_u64(&d);
    const unsigned char *op = take(&d, (size_t)on * 4);
    const bl_optim_config *oc = bl_optim_get_config(v->opt);
    if (d.bad || osteps < 0)
        return bl_error(ctx, BL_EFORMAT, "%s: malformed optimizer section", nm);
    if (kind != oc->kind || on != bl_optim_state_size(v->opt))
        return bl_error(ctx, BL_EINVAL, "%s: the snapshot's optimizer is %s with %" PRIu64
                        " state values; this run's %s with %zu",
                        nm, bl_optim_name(kind), on, bl_optim_name(oc->kind),
                        bl_optim_state_size(v->opt));
    /* the layers' stochastic streams */
    dec dl;
    if (!find_section(s, T_LAYR, &dl) || get_u64(&dl) != (uint64_t)bl_net_num_layers(v->net))
        return bl_error(ctx, BL_EFORMAT, "%s: missing or malformed layer section", nm);
    int layers = bl_net_num_layers(v->net);
    dec dsh, dg, dst, dh, dt;
    if (!find_section(s, T_SHUF, &dsh) || !find_section(s, T_GNS, &dg) ||
        !find_section(s, T_STIM, &dst) || !find_section(s, T_HIST, &dh) ||
        !find_section(s, T_TRGT, &dt))
        return bl_error(ctx, BL_EFORMAT, "%s: a section is missing (shuffle, noise scale, step "
                        "times, history or target)", nm);

    /* device state */
    bl_device *dev = bl_net_device(v->net);
    if ((rc = upload_floats(ctx, s, T_PARM, "parameters", dev, bl_net_params(v->net),
                            bl_net_num_params(v->net))) != BL_OK ||
        (rc = upload_floats(ctx, s, T_NSTA, "state values", dev, bl_net_state(v->net),
                            bl_net_num_state(v->net))) != BL_OK)
        return rc;
    float *oh = malloc((on ? (size_t)on : 1) * sizeof *oh);
    if (!oh)
        return bl_error(ctx, BL_ENOMEM, "%s: out of memory", nm);
    if (on)
        memcpy(oh, op, (size_t)on * 4);
    if (!host_is_little_endian())
        swap32((unsigned char *)oh, (size_t)on);
    rc = bl_optim_load(ctx, v->opt, oh, osteps);
    free(oh);
    if (rc != BL_OK)
        return rc;
    for (int i = 0; i < layers; i++) {
        bl_layer *l = bl_net_layer(v->net, i);
        l->seed = get_u64(&dl);
        l->counter = get_u64(&dl);
    }
    if (dl.bad)
        return bl_error(ctx, BL_EFORMAT, "%s: malformed layer section", nm);

    /* the shuffle stream: draw the current epoch's permutation again */
    bl_rng rng;
    rng.state = get_u64(&dsh);
    rng.inc = get_u64(&dsh);
    if (dsh.bad || !(rng.inc & 1))
        return bl_error(ctx, BL_EFORMAT, "%s: malformed shuffle section", nm);
    v->loader->rng = rng;
    bl__loader_new_epoch(v->loader);

    v->gns->ema_g2 = get_f64(&dg);
    v->gns->ema_trace = get_f64(&dg);
    v->gns->updates = get_i64(&dg);

    /* the scheduler's own state, when it is the plugin that saved it */
    dec dsc;
    if (v->scheduler && find_section(s, T_SCHD, &dsc)) {
        uint64_t nl = get_u64(&dsc);
        const unsigned char *pn = take(&dsc, (size_t)nl);
        uint64_t sl = get_u64(&dsc);
        const unsigned char *ps = take(&dsc, (size_t)sl);
        if (dsc.bad)
            return bl_error(ctx, BL_EFORMAT, "%s: malformed scheduler section", nm);
        const char *mine = bl_scheduler_plugin(v->scheduler)->name;
        if (strlen(mine) == nl && memcmp(mine, pn, (size_t)nl) == 0 &&
            (rc = bl_scheduler_restore(ctx, v->scheduler, ps, (size_t)sl)) != BL_OK)
            return bl_error_prefix(ctx, "%s", nm);
    }

    /* step times: kept as they were when the ring has the same size */
    uint64_t cap = get_u64(&dst), n = get_u64(&dst), next = get_u64(&dst);
    bl__step_times *st = v->step_times;
    if (dst.bad || n > cap || next >= (cap ? cap : 1))
        return bl_error(ctx, BL_EFORMAT, "%s: malformed step-time section", nm);
    if (cap == st->cap) {
        for (size_t i = 0; i < n; i++) {
            st->t[i] = get_f64(&dst);
            st->batch[i] = get_i64(&dst);
        }
        st->n = (size_t)n;
        st->next = (size_t)next;
    }
    if (dst.bad)
        return bl_error(ctx, BL_EFORMAT, "%s: malformed step-time section", nm);

    /* history */
    uint64_t hc = get_u64(&dh);
    if (dh.bad || hc > dh.n / 8)
        return bl_error(ctx, BL_EFORMAT, "%s: malformed history section", nm);
    bl_run_result *res = v->res;
    if (hc > 0) {
        bl_eval_point *h = bl__grow(res->history, v->history_cap, (size_t)hc, sizeof *h);
        if (!h)
            return bl_error(ctx, BL_ENOMEM, "%s: out of memory for the history", nm);
        res->history = h;
    }
    for (uint64_t i = 0; i < hc; i++)
        get_point(&dh, &res->history[i]);
    if (dh.bad)
        return bl_error(ctx, BL_EFORMAT, "%s: malformed history section", nm);
    res->history_count = (size_t)hc;

    res->steps_to_target = get_i64(&dt);
    res->samples_to_target = get_i64(&dt);
    res->steps_to_target_error = get_i64(&dt);
    res->wall_time_to_target = get_f64(&dt);
    res->epochs_to_target = get_f64(&dt);
    res->max_batch_used = get_i64(&dt);
    if (dt.bad)
        return bl_error(ctx, BL_EFORMAT, "%s: malformed target section", nm);

    /* counters */
    v->state.step = ints[4];
    v->state.epoch = ints[5];
    v->state.samples = ints[6];
    v->state.batch = ints[7];
    v->pos = ints[8];
    v->epoch = ints[9];
    v->loss_count = ints[10];
    v->point_samples = ints[11];
    v->ref_count = ints[12];
    v->win_count = ints[13];
    v->win_from = ints[14];
    v->chance_run = ints[15];
    v->last_asked = ints[16];
    v->have_last = ints[17] != 0;
    v->ref_done = ints[18] != 0;
    v->diverged = ints[19] != 0;
    v->correct_sum = ints[20];
    v->state.epoch_progress = dbl[0];
    v->state.lr = dbl[1];
    v->state.wall = dbl[2];
    v->train_time = dbl[3];
    v->eval_time = dbl[4];
    v->loss_sum = dbl[5];
    v->point_time = dbl[6];
    v->next_eval = dbl[7];
    v->ref_loss_sum = dbl[8];
    v->win_loss_sum = dbl[9];
    v->last = last;
    if (v->pos < 0 || v->pos > v->n_train || v->state.step < 0 || v->state.samples < 0)
        return bl_error(ctx, BL_EFORMAT, "%s: impossible counters (step %" PRId64
                        ", position %" PRId64 " of %" PRId64 ")",
                        nm, v->state.step, v->pos, v->n_train);
    return BL_OK;
}
