/* TensorBoard event files (batchlab/tfevents.h): record framing, the Event and Summary
 * messages, the HParams plugin's messages, and the writer.
 *
 * Field numbers (proto3), from the TensorBoard sources:
 *   tensorboard/compat/proto/event.proto    Event: wall_time 1 (double), step 2 (int64),
 *                                           file_version 3 (string), summary 5
 *   tensorboard/compat/proto/summary.proto  Summary: value 1 (repeated);
 *                                           Summary.Value: tag 1, simple_value 2 (float),
 *                                           metadata 9; SummaryMetadata: plugin_data 1;
 *                                           PluginData: plugin_name 1, content 2 (bytes)
 *   tensorboard/plugins/hparams/plugin_data.proto
 *       HParamsPluginData: version 1 (int32, 0 = PLUGIN_DATA_VERSION in metadata.py),
 *                          oneof: experiment 2, session_start_info 3, session_end_info 4
 *       SessionStartInfo:  hparams 1 (map<string, google.protobuf.Value>),
 *                          start_time_secs 5 (double)
 *       SessionEndInfo:    status 1 (Status), end_time_secs 2 (double)
 *   tensorboard/plugins/hparams/api.proto
 *       Experiment:  description 1, time_created_secs 3 (double), hparam_infos 4 (repeated),
 *                    metric_infos 5 (repeated)
 *       HParamInfo:  name 1, type 4 (DataType: STRING 1, BOOL 2, FLOAT64 3)
 *       MetricInfo:  name 1 (MetricName: group 1, tag 2), dataset_type 5
 *                    (DatasetType: TRAINING 1, VALIDATION 2)
 *       Status:      UNKNOWN 0, SUCCESS 1, FAILURE 2, RUNNING 3
 *   google/protobuf/struct.proto  Value: number_value 2, string_value 3, bool_value 4;
 *                                 a map entry is a message {key 1, value 2}
 * Tags (tensorboard/plugins/hparams/metadata.py): _hparams_/experiment,
 * _hparams_/session_start_info, _hparams_/session_end_info; plugin name "hparams".
 * An hparams Summary.Value carries only a tag and metadata; TensorBoard supplies the empty
 * tensor itself (dataclass_compat.py, _migrate_hparams_value).
 */
#include "batchlab/tfevents.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "results/tfevents/protobuf.h"
#include "results/tfevents/tfrecord.h"

enum { EVENT_WALL_TIME = 1, EVENT_STEP = 2, EVENT_FILE_VERSION = 3, EVENT_SUMMARY = 5 };
enum { SUMMARY_VALUE = 1 };
enum { VALUE_TAG = 1, VALUE_SIMPLE = 2, VALUE_METADATA = 9 };
enum { METADATA_PLUGIN_DATA = 1 };
enum { PLUGIN_NAME = 1, PLUGIN_CONTENT = 2 };
enum { HPD_EXPERIMENT = 2, HPD_START = 3, HPD_END = 4 };
enum { START_HPARAMS = 1, START_TIME = 5 };
enum { END_STATUS = 1, END_TIME = 2 };
enum { EXP_TIME_CREATED = 3, EXP_HPARAM_INFOS = 4, EXP_METRIC_INFOS = 5 };
enum { HPARAM_NAME = 1, HPARAM_TYPE = 4 };
enum { DATA_TYPE_STRING = 1, DATA_TYPE_BOOL = 2, DATA_TYPE_FLOAT64 = 3 };
enum { METRIC_NAME = 1, METRIC_DATASET_TYPE = 5 };
enum { METRIC_NAME_GROUP = 1, METRIC_NAME_TAG = 2 };
enum { DATASET_TRAINING = 1, DATASET_VALIDATION = 2 };
enum { MAP_KEY = 1, MAP_VALUE = 2 };
enum { PBVALUE_NUMBER = 2, PBVALUE_STRING = 3, PBVALUE_BOOL = 4 };
enum { STATUS_UNKNOWN = 0, STATUS_SUCCESS = 1, STATUS_FAILURE = 2, STATUS_RUNNING = 3 };

#define FILE_VERSION "brain.Event:2"
#define HEADER_BYTES 12
#define FOOTER_BYTES 4

const char *const bl_tfevents_metric_tags[4] = {"train/loss", "train/accuracy", "val/loss",
                                                "val/accuracy"};

struct bl_tfevents {
    FILE *f;
    char *path;   /* the event file */
    bool broken;  /* a write failed: the file may end in a partial record */
};

static double now(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return (double)time(NULL);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double wall_or_now(double wall_time)
{
    return wall_time > 0.0 ? wall_time : now(); /* NaN compares false */
}

/* ---- framing --------------------------------------------------------------------------------- */

static void store_le(unsigned char *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void frame_header(unsigned char header[HEADER_BYTES], size_t n)
{
    store_le(header, (uint64_t)n, 8);
    store_le(header + 8, bl__crc32c_mask(bl__crc32c(0, header, 8)), 4);
}

static void frame_footer(unsigned char footer[FOOTER_BYTES], const void *data, size_t n)
{
    store_le(footer, bl__crc32c_mask(bl__crc32c(0, data, n)), 4);
}

size_t bl__tfrecord_frame(const void *data, size_t n, void *out, size_t cap)
{
    size_t need = n + HEADER_BYTES + FOOTER_BYTES;
    if (!out || cap < need)
        return need;
    unsigned char *p = out;
    frame_header(p, n);
    if (n)
        memcpy(p + HEADER_BYTES, data, n);
    frame_footer(p + HEADER_BYTES + n, data, n);
    return need;
}

/* ---- messages -------------------------------------------------------------------------------- */

/* Event{wall_time, step} without its payload; step 0 is left out as protobuf does. */
static void event_start(bl__pb *ev, double wall_time, int64_t step)
{
    bl__pb_double(ev, EVENT_WALL_TIME, wall_time);
    if (step != 0)
        bl__pb_int64(ev, EVENT_STEP, step);
}

static void encode_version(bl__pb *ev, double wall_time)
{
    event_start(ev, wall_time, 0);
    bl__pb_string(ev, EVENT_FILE_VERSION, FILE_VERSION);
}

/* Appends Summary.Value{tag, simple_value} to a Summary. */
static void summary_scalar(bl__pb *summary, const char *tag, double value)
{
    bl__pb v = BL__PB_INIT;
    bl__pb_string(&v, VALUE_TAG, tag);
    bl__pb_float(&v, VALUE_SIMPLE, (float)value);
    bl__pb_message(summary, SUMMARY_VALUE, &v);
    bl__pb_free(&v);
}

static void encode_scalar(bl__pb *ev, const char *tag, int64_t step, double value,
                          double wall_time)
{
    bl__pb summary = BL__PB_INIT;
    summary_scalar(&summary, tag, value);
    event_start(ev, wall_time, step);
    bl__pb_message(ev, EVENT_SUMMARY, &summary);
    bl__pb_free(&summary);
}

/* Event{wall_time, summary{value{tag, metadata{plugin_data{"hparams", content}}}}} where
 * content = HParamsPluginData{version 0 (left out), <field> = data}. */
static void encode_hparams_event(bl__pb *ev, double wall_time, const char *tag, uint32_t field,
                                 const bl__pb *data)
{
    bl__pb content = BL__PB_INIT, plugin = BL__PB_INIT, meta = BL__PB_INIT,
           value = BL__PB_INIT, summary = BL__PB_INIT;
    bl__pb_message(&content, field, data);
    bl__pb_string(&plugin, PLUGIN_NAME, "hparams");
    bl__pb_message(&plugin, PLUGIN_CONTENT, &content);
    bl__pb_message(&meta, METADATA_PLUGIN_DATA, &plugin);
    bl__pb_string(&value, VALUE_TAG, tag);
    bl__pb_message(&value, VALUE_METADATA, &meta);
    bl__pb_message(&summary, SUMMARY_VALUE, &value);
    event_start(ev, wall_time, 0);
    bl__pb_message(ev, EVENT_SUMMARY, &summary);
    bl__pb_free(&content);
    bl__pb_free(&plugin);
    bl__pb_free(&meta);
    bl__pb_free(&value);
    bl__pb_free(&summary);
}

/* Frames an encoded event into out (see bl__tfrecord_frame); 0 when encoding ran out of
 * memory. */
static size_t frame_event(bl__pb *ev, void *out, size_t cap)
{
    size_t n = ev->failed ? 0 : bl__tfrecord_frame(ev->data, ev->len, out, cap);
    bl__pb_free(ev);
    return n;
}

size_t bl__tfevents_encode_version(double wall_time, void *out, size_t cap)
{
    bl__pb ev = BL__PB_INIT;
    encode_version(&ev, wall_time);
    return frame_event(&ev, out, cap);
}

size_t bl__tfevents_encode_scalar(const char *tag, int64_t step, double value,
                                 double wall_time, void *out, size_t cap)
{
    if (!tag)
        return 0;
    bl__pb ev = BL__PB_INIT;
    encode_scalar(&ev, tag, step, value, wall_time);
    return frame_event(&ev, out, cap);
}

/* ---- paths ----------------------------------------------------------------------------------- */

static bool safe_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("._-=+,@", c) != NULL;
}

/* Appends the safe form of run_name ("a/b" components; see bl_tfevents_open) to dst, which
 * has room for strlen(run_name) + 2 more bytes. */
static void append_run_name(char *dst, const char *run_name)
{
    char *p = dst + strlen(dst);
    const char *s = run_name;
    while (*s) {
        size_t n = strcspn(s, "/");
        if (n > 0) {
            *p++ = '/';
            if (n <= 2 && strspn(s, ".") == n) {       /* "." → "_", ".." → "__" */
                memset(p, '_', n);
                p += n;
            } else {
                for (size_t i = 0; i < n; i++)
                    *p++ = safe_char(s[i]) ? s[i] : '_';
            }
        }
        s += n;
        if (*s == '/')
            s++;
    }
    *p = '\0';
}

/* mkdir -p; errors name the directory that could not be made. `path` is modified and
 * restored. */
static int make_dirs(bl_ctx *ctx, char *path)
{
    size_t len = strlen(path);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        if (path[i - 1] == '/')
            continue;                                /* "a//b" */
        char saved = path[i];
        path[i] = '\0';
        int rc = BL_OK;
        if (mkdir(path, 0777) != 0) {
            int err = errno;
            struct stat st;
            if (err != EEXIST)
                rc = bl_error(ctx, BL_EIO, "tensorboard: cannot create directory '%s': %s",
                              path, strerror(err));
            else if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
                rc = bl_error(ctx, BL_EIO,
                              "tensorboard: cannot create directory '%s': %s", path,
                              "a file of that name is in the way");
        }
        path[i] = saved;
        if (rc != BL_OK)
            return rc;
    }
    return BL_OK;
}

static void host_name(char *buf, size_t cap)
{
    if (gethostname(buf, cap - 1) != 0)
        buf[0] = '\0';
    buf[cap - 1] = '\0';
    for (char *p = buf; *p; p++)
        if (!safe_char(*p))
            *p = '_';
    if (!buf[0])
        snprintf(buf, cap, "localhost");
}

/* Claims a new directory for one run: `dir` itself when no such entry exists, else
 * "<dir>-2", "<dir>-3", ...; mkdir is atomic, so two writers (threads or processes) never claim
 * the same one. Its parent must exist. *claimed is malloc'd. */
static int claim_dir(bl_ctx *ctx, const char *dir, char **claimed)
{
    size_t cap = strlen(dir) + 16;
    char *path = malloc(cap);
    if (!path)
        return bl_error(ctx, BL_ENOMEM, "tensorboard: out of memory");
    for (int k = 1; k <= 10000; k++) {
        if (k == 1)
            snprintf(path, cap, "%s", dir);
        else
            snprintf(path, cap, "%s-%d", dir, k);
        if (mkdir(path, 0777) == 0) {
            *claimed = path;
            return BL_OK;
        }
        if (errno != EEXIST) {
            int rc = bl_error(ctx, BL_EIO, "tensorboard: cannot create directory '%s': %s",
                              path, strerror(errno));
            free(path);
            return rc;
        }
    }
    int rc = bl_error(ctx, BL_EIO, "tensorboard: cannot create a run directory '%s-N': "
                      "10000 runs of that name are there", dir);
    free(path);
    return rc;
}

/* Creates a new event file in dir (never an existing one); *path_out is malloc'd. */
static int create_file(bl_ctx *ctx, const char *dir, FILE **f_out, char **path_out)
{
    char host[256];
    host_name(host, sizeof host);
    long long secs = (long long)time(NULL);
    size_t cap = strlen(dir) + strlen(host) + 64;
    char *path = malloc(cap);
    if (!path)
        return bl_error(ctx, BL_ENOMEM, "tensorboard: out of memory");
    for (int attempt = 0; attempt < 1000; attempt++) {
        if (attempt == 0)
            snprintf(path, cap, "%s/events.out.tfevents.%010lld.%s", dir, secs, host);
        else
            snprintf(path, cap, "%s/events.out.tfevents.%010lld.%s.%d", dir, secs, host,
                     attempt);
        FILE *f = fopen(path, "wbx");
        if (f) {
            *f_out = f;
            *path_out = path;
            return BL_OK;
        }
        if (errno != EEXIST) {
            int rc = bl_error(ctx, BL_EIO, "tensorboard: cannot create '%s': %s", path,
                              strerror(errno));
            free(path);
            return rc;
        }
    }
    int rc = bl_error(ctx, BL_EIO, "tensorboard: cannot create an event file in '%s': "
                      "too many files of the same second", dir);
    free(path);
    return rc;
}

/* ---- the writer ------------------------------------------------------------------------------ */

/* Frames and writes one encoded event, then flushes; frees the event. */
static int write_event(bl_ctx *ctx, bl_tfevents *w, bl__pb *ev)
{
    if (ev->failed) {
        bl__pb_free(ev);
        return bl_error(ctx, BL_ENOMEM, "tensorboard: '%s': out of memory", w->path);
    }
    if (w->broken) {
        bl__pb_free(ev);
        return bl_error(ctx, BL_EIO, "tensorboard: cannot write '%s': an earlier write failed",
                        w->path);
    }
    unsigned char header[HEADER_BYTES], footer[FOOTER_BYTES];
    frame_header(header, ev->len);
    frame_footer(footer, ev->data, ev->len);
    errno = 0;
    bool ok = fwrite(header, 1, sizeof header, w->f) == sizeof header &&
              fwrite(ev->data, 1, ev->len, w->f) == ev->len &&
              fwrite(footer, 1, sizeof footer, w->f) == sizeof footer && fflush(w->f) == 0;
    int err = errno;
    bl__pb_free(ev);
    if (!ok) {
        w->broken = true;
        return bl_error(ctx, BL_EIO, "tensorboard: cannot write '%s': %s", w->path,
                        err ? strerror(err) : "write error");
    }
    return BL_OK;
}

int bl_tfevents_open(bl_ctx *ctx, const char *logdir, const char *run_name, bl_tfevents **out)
{
    if (!logdir || !logdir[0] || !out)
        return bl_error(ctx, BL_EINVAL, "tensorboard: no log directory given");
    if (!run_name)
        run_name = "";
    size_t cap = strlen(logdir) + strlen(run_name) + 2;
    char *dir = malloc(cap);
    bl_tfevents *w = calloc(1, sizeof *w);
    if (!dir || !w) {
        free(dir);
        free(w);
        return bl_error(ctx, BL_ENOMEM, "tensorboard: out of memory");
    }
    snprintf(dir, cap, "%s", logdir);
    size_t root = strlen(dir);
    append_run_name(dir, run_name);
    char *run_dir = NULL;
    int rc = BL_OK;
    if (strlen(dir) > root) {              /* a named run: mkdir -p its parent, claim it */
        char *last = strrchr(dir + root, '/');
        *last = '\0';
        rc = make_dirs(ctx, dir);
        *last = '/';
        if (rc == BL_OK)
            rc = claim_dir(ctx, dir, &run_dir);
    } else {
        rc = make_dirs(ctx, dir);
    }
    if (rc == BL_OK)
        rc = create_file(ctx, run_dir ? run_dir : dir, &w->f, &w->path);
    free(run_dir);
    free(dir);
    if (rc == BL_OK) {
        bl__pb ev = BL__PB_INIT;
        encode_version(&ev, now());
        rc = write_event(ctx, w, &ev);
    }
    if (rc != BL_OK) {
        if (w->f)
            fclose(w->f);
        free(w->path);
        free(w);
        return rc;
    }
    *out = w;
    return BL_OK;
}

int bl_tfevents_close(bl_ctx *ctx, bl_tfevents *w)
{
    if (!w)
        return BL_OK;
    int rc = BL_OK;
    if (fclose(w->f) != 0 && !w->broken)
        rc = bl_error(ctx, BL_EIO, "tensorboard: cannot write '%s': %s", w->path,
                      strerror(errno));
    free(w->path);
    free(w);
    return rc;
}

const char *bl_tfevents_path(const bl_tfevents *w)
{
    return w->path;
}

int bl_tfevents_scalar(bl_ctx *ctx, bl_tfevents *w, const char *tag, int64_t step,
                       double value, double wall_time)
{
    if (!tag || !tag[0])
        return bl_error(ctx, BL_EINVAL, "tensorboard: '%s': a scalar needs a tag", w->path);
    bl__pb ev = BL__PB_INIT;
    encode_scalar(&ev, tag, step, value, wall_or_now(wall_time));
    return write_event(ctx, w, &ev);
}

int bl_tfevents_point(bl_ctx *ctx, bl_tfevents *w, const bl_eval_point *p)
{
    const struct {
        const char *tag;
        double value;
    } scalars[] = {
        {bl_tfevents_metric_tags[0], p->train_loss},
        {bl_tfevents_metric_tags[1], p->train_accuracy},
        {bl_tfevents_metric_tags[2], p->val_loss},
        {bl_tfevents_metric_tags[3], p->val_accuracy},
        {"schedule/batch_size", (double)p->batch},
        {"schedule/lr", p->lr},
        {"gns/b_simple", p->gns},
        {"throughput/samples_per_sec", p->samples_per_sec},
        {"progress/samples", (double)p->samples},
    };
    bl__pb summary = BL__PB_INIT, ev = BL__PB_INIT;
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++)
        if (!isnan(scalars[i].value))
            summary_scalar(&summary, scalars[i].tag, scalars[i].value);
    event_start(&ev, now(), p->step);
    bl__pb_message(&ev, EVENT_SUMMARY, &summary);
    bl__pb_free(&summary);
    return write_event(ctx, w, &ev);
}

/* google.protobuf.Value of the config's entry i; *type receives its HParamInfo DataType. */
static int hparam_value(bl_ctx *ctx, const bl_config *cfg, size_t i, bl__pb *v, int *type)
{
    const char *key = bl_config_key(cfg, i);
    switch (bl_config_type_at(cfg, i)) {
    case BL_TYPE_NUMBER:
        bl__pb_double(v, PBVALUE_NUMBER, bl_config_number(cfg, key));
        *type = DATA_TYPE_FLOAT64;
        return BL_OK;
    case BL_TYPE_INT:
        bl__pb_double(v, PBVALUE_NUMBER, (double)bl_config_int(cfg, key));
        *type = DATA_TYPE_FLOAT64;
        return BL_OK;
    case BL_TYPE_BOOL:
        bl__pb_bool(v, PBVALUE_BOOL, bl_config_bool(cfg, key));
        *type = DATA_TYPE_BOOL;
        return BL_OK;
    default: {                                        /* strings, text, lists: option text */
        size_t n = bl_config_format_value(cfg, i, NULL, 0);
        char *text = malloc(n + 1);
        if (!text)
            return bl_error(ctx, BL_ENOMEM, "tensorboard: out of memory");
        bl_config_format_value(cfg, i, text, n + 1);
        bl__pb_string(v, PBVALUE_STRING, text);
        free(text);
        *type = DATA_TYPE_STRING;
        return BL_OK;
    }
    }
}

int bl_tfevents_hparams(bl_ctx *ctx, bl_tfevents *w, const bl_config *hparams,
                        const char *const *metric_tags, size_t n)
{
    if (!metric_tags && n == 0) {
        metric_tags = bl_tfevents_metric_tags;
        n = sizeof bl_tfevents_metric_tags / sizeof bl_tfevents_metric_tags[0];
    }
    for (size_t i = 0; i < n; i++)
        if (!metric_tags || !metric_tags[i] || !metric_tags[i][0])
            return bl_error(ctx, BL_EINVAL, "tensorboard: '%s': metric tag %zu is empty",
                            w->path, i + 1);
    double t = now();
    bl__pb experiment = BL__PB_INIT, start = BL__PB_INIT;
    int rc = BL_OK;
    size_t count = hparams ? bl_config_count(hparams) : 0;
    for (size_t i = 0; i < count && rc == BL_OK; i++) {
        /* The domain of each hparam is left out: TensorBoard takes the experiment of one run
         * for the whole log directory, and a domain listing only this run's value would hide
         * the other runs of a sweep behind the HParams filter. */
        bl__pb value = BL__PB_INIT, entry = BL__PB_INIT, info = BL__PB_INIT;
        int type = DATA_TYPE_STRING;
        rc = hparam_value(ctx, hparams, i, &value, &type);
        const char *key = bl_config_key(hparams, i);
        bool absent = bl_config_type_at(hparams, i) == BL_TYPE_NUMBER &&
                      isnan(bl_config_number(hparams, key));
        if (!absent) {                       /* NaN: a column, but no value in this run */
            bl__pb_string(&entry, MAP_KEY, key);
            bl__pb_message(&entry, MAP_VALUE, &value);
            bl__pb_message(&start, START_HPARAMS, &entry);
        }
        bl__pb_string(&info, HPARAM_NAME, bl_config_key(hparams, i));
        bl__pb_int64(&info, HPARAM_TYPE, type);
        bl__pb_message(&experiment, EXP_HPARAM_INFOS, &info);
        bl__pb_free(&value);
        bl__pb_free(&entry);
        bl__pb_free(&info);
    }
    bl__pb_double(&start, START_TIME, t);
    bl__pb_double(&experiment, EXP_TIME_CREATED, t);
    for (size_t i = 0; i < n; i++) {
        bl__pb name = BL__PB_INIT, info = BL__PB_INIT;
        bl__pb_string(&name, METRIC_NAME_TAG, metric_tags[i]); /* group "": this run */
        bl__pb_message(&info, METRIC_NAME, &name);
        if (strncmp(metric_tags[i], "train/", 6) == 0)
            bl__pb_int64(&info, METRIC_DATASET_TYPE, DATASET_TRAINING);
        else if (strncmp(metric_tags[i], "val/", 4) == 0)
            bl__pb_int64(&info, METRIC_DATASET_TYPE, DATASET_VALIDATION);
        bl__pb_message(&experiment, EXP_METRIC_INFOS, &info);
        bl__pb_free(&name);
        bl__pb_free(&info);
    }
    if (rc == BL_OK) {
        bl__pb ev = BL__PB_INIT;
        encode_hparams_event(&ev, t, "_hparams_/experiment", HPD_EXPERIMENT, &experiment);
        rc = write_event(ctx, w, &ev);
    }
    if (rc == BL_OK) {
        bl__pb ev = BL__PB_INIT;
        encode_hparams_event(&ev, t, "_hparams_/session_start_info", HPD_START, &start);
        rc = write_event(ctx, w, &ev);
    }
    bl__pb_free(&experiment);
    bl__pb_free(&start);
    return rc;
}

int bl_tfevents_end(bl_ctx *ctx, bl_tfevents *w, bl_run_status status)
{
    int s = STATUS_UNKNOWN;
    switch (status) {
    case BL_RUN_COMPLETED: s = STATUS_SUCCESS; break;
    case BL_RUN_FAILED:
    case BL_RUN_CRASHED:
    case BL_RUN_TIMED_OUT:
    case BL_RUN_DIVERGED: s = STATUS_FAILURE; break;
    case BL_RUN_RUNNING: s = STATUS_RUNNING; break;
    case BL_RUN_INTERRUPTED: s = STATUS_UNKNOWN; break;
    }
    double t = now();
    bl__pb end = BL__PB_INIT, ev = BL__PB_INIT;
    if (s != STATUS_UNKNOWN)
        bl__pb_int64(&end, END_STATUS, s);
    bl__pb_double(&end, END_TIME, t);
    encode_hparams_event(&ev, t, "_hparams_/session_end_info", HPD_END, &end);
    bl__pb_free(&end);
    return write_event(ctx, w, &ev);
}
