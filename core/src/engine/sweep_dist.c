/* The distributed sweep executor (batchlab/sweep.h, bl_sweep_distributed): the points of a
 * sweep shared among the ranks of an MPI job through dist/dist.h (no MPI call here).
 *
 *   every group leader: i = counter++ on rank 0 ── i < n? ── run point i (its group with it)
 *                         └─ pack → post {i, rc, point, msg, bytes} to rank 0 ─┘
 *   rank 0 (a leader too): between its own points, and at the end until every index handed
 *                         out came back: receive, unpack, bl_sweep_record (on_point: output)
 *   at the end: rank 0 broadcasts every record; the other ranks record them in index order.
 *
 * Records travel as the bytes of the structs below: every rank runs the same build of
 * batchlab on the same kind of machine (as MPI jobs do). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batchlab/sweep.h"
#include "dist/dist.h"

#define TAG_RESULT 7101

typedef struct wire {
    uint64_t index;
    int32_t rc;              /* the code the point's run ended with (BL_OK: recorded) */
    uint32_t msg_len;        /* bytes of the message after the header (rc != BL_OK) */
    uint64_t data_len;       /* bytes packed by the caller's pack hook, after the message */
    bl_sweep_point point;
} wire;

typedef struct record {
    char *bytes;             /* a wire and what follows it */
    size_t len;
} record;

/* A wire record of point `index`: the point, rc and its message, and the caller's bytes. */
static int make_record(bl_sweep *sw, bl_ctx *ctx, size_t index, int rc,
                       const bl_sweep_point *p, record *out)
{
    void *data = NULL;
    size_t len = 0;
    int prc = bl_sweep_pack(sw, ctx, index, rc, &data, &len);
    if (prc != BL_OK)
        rc = prc;                /* the point goes back without the caller's bytes */
    char *saved = rc != BL_OK ? strdup(bl_errmsg(ctx)) : NULL;
    const char *msg = saved;
    size_t ml = saved ? strlen(saved) : 0;
    char *b = malloc(sizeof(wire) + ml + len);
    if (!b) {
        /* a small record instead: whoever collects counts this point as handed out and waits
         * for it, so it must hear of it, as failed */
        free(data);
        data = NULL;
        len = 0;
        rc = BL_ENOMEM;
        msg = "out of memory sending the point's result";
        ml = strlen(msg);
        b = malloc(sizeof(wire) + ml);
        if (!b) {
            free(saved);
            return bl_error(ctx, BL_ENOMEM, "out of memory sending the result of point %zu",
                            index);
        }
    }
    wire w = {.index = index, .rc = rc, .msg_len = (uint32_t)ml, .data_len = len, .point = *p};
    memcpy(b, &w, sizeof w);
    if (ml)
        memcpy(b + sizeof w, msg, ml);
    if (len)
        memcpy(b + sizeof w + ml, data, len);
    free(saved);
    free(data);
    *out = (record){b, sizeof w + ml + len};
    return BL_OK;
}

/* Reads the record at bytes[0 … avail): *w, the message (copied, NUL-ended, malloc'd) and
 * where the caller's bytes are. Returns the record's length, 0 when malformed. */
static size_t read_record(const char *bytes, size_t avail, wire *w, char **msg,
                          const char **data)
{
    if (avail < sizeof *w)
        return 0;
    memcpy(w, bytes, sizeof *w);
    if (w->msg_len > avail - sizeof *w || w->data_len > avail - sizeof *w - w->msg_len)
        return 0;
    *msg = malloc((size_t)w->msg_len + 1);
    if (!*msg)
        return 0;
    memcpy(*msg, bytes + sizeof *w, w->msg_len);
    (*msg)[w->msg_len] = '\0';
    *data = bytes + sizeof *w + w->msg_len;
    return sizeof *w + w->msg_len + (size_t)w->data_len;
}

typedef struct run_state {
    bl_sweep *sw;
    bl_ctx *ctx;
    size_t n;
    bl_dist_comm *world, *group;
    bl_dist_counter *counter;
    bool leader;             /* the group's first rank: takes points, sends results */
    bool root;               /* world rank 0 */
    record *records;         /* root: per index, what was recorded */
    bool *ran;               /* per index: run on this rank */
    record fatal;            /* root: the record of the point that ended the sweep */
    int code;                /* the first hook error: it ends the sweep on every rank */
    size_t handed;           /* root: indices handed out (all < handed come back) */
    size_t back;             /* root: indices recorded or failed */
} run_state;

/* Root: a record arrived (or was made here); unpack it unless it was run here, record it. */
static int take_record(run_state *s, record rec, bool local)
{
    wire w;
    char *msg = NULL;
    const char *data = NULL;
    s->back++;               /* one message per index handed out, whatever it holds */
    if (!read_record(rec.bytes, rec.len, &w, &msg, &data) || w.index >= s->n) {
        free(msg);
        free(rec.bytes);
        return bl_error(s->ctx, BL_EIO, "distributed sweep: a malformed result arrived");
    }
    int rc = BL_OK;
    if (!local)
        rc = bl_sweep_unpack(s->sw, s->ctx, w.index, w.rc, msg, data, w.data_len, &w.point);
    else if (w.rc != BL_OK)
        rc = w.rc;
    free(msg);
    if (rc == BL_OK && w.rc == BL_OK) {
        s->records[w.index] = rec;
        return bl_sweep_record(s->sw, s->ctx, w.index, &w.point);
    }
    if (rc == BL_OK)
        rc = w.rc;
    if (s->code == BL_OK && !s->fatal.bytes)
        s->fatal = rec;
    else
        free(rec.bytes);
    return rc;
}

/* Root: records what arrived; with `wait`, until every handed-out index is back. */
static void collect(run_state *s, bool wait)
{
    for (;;) {
        if (wait && s->back >= s->handed)
            return;
        void *buf;
        size_t len;
        int src;
        int rc = bl__dist_receive(s->ctx, s->world, TAG_RESULT, wait, &src, &buf, &len);
        if (rc != BL_OK) {
            if (s->code == BL_OK)
                s->code = rc;
            return;                  /* MPI itself failed: nothing more will arrive */
        }
        if (!buf)
            return;
        rc = take_record(s, (record){buf, len}, false);
        if (rc != BL_OK && s->code == BL_OK)
            s->code = rc;
    }
}

/* Runs point i here (with the group as the data-parallel comm). */
static int run_here(run_state *s, size_t i, bl_sweep_point *p)
{
    bl_dist_comm *before = bl__dist_set_current(s->group);
    int rc = bl_sweep_run_point(s->sw, s->ctx, i, p);
    bl__dist_set_current(before);
    s->ran[i] = true;
    return rc;
}

/* A group leader's loop: take, tell the group, run, send (root: record). */
static void lead(run_state *s)
{
    for (;;) {
        uint64_t i = s->n;
        if (s->code == BL_OK) {
            int rc = bl__dist_counter_add(s->ctx, s->counter, 1, &i);
            if (rc != BL_OK) {
                s->code = rc;
                i = s->n;
            }
        }
        if (i > s->n)
            i = s->n;
        if (bl__dist_size(s->group) > 1) {         /* the group follows: n means stop */
            uint64_t *msg = malloc(sizeof i);
            size_t len = sizeof i;
            if (msg)
                *msg = i;
            int rc = msg ? bl__dist_bcast(s->ctx, s->group, 0, (void **)&msg, &len)
                         : bl_error(s->ctx, BL_ENOMEM, "out of memory");
            free(msg);
            if (rc != BL_OK && s->code == BL_OK) {
                s->code = rc;
                return;
            }
        }
        if (i >= s->n)
            return;
        if (s->root)
            collect(s, false);
        bl_sweep_point p;
        int rc = run_here(s, (size_t)i, &p);
        record rec = {0};
        int mrc = make_record(s->sw, s->ctx, (size_t)i, rc, &p, &rec);
        if (mrc != BL_OK) {
            if (s->code == BL_OK)
                s->code = mrc;
            if (!s->root)
                return;          /* not even a small record could be made: stop here */
            s->back++;
            continue;
        }
        if (s->root) {
            int trc = take_record(s, rec, true);
            if (trc != BL_OK && s->code == BL_OK)
                s->code = trc;
        } else {
            int prc = bl__dist_post(s->ctx, s->world, 0, TAG_RESULT, rec.bytes, rec.len);
            if (rc != BL_OK || prc != BL_OK) {
                s->code = rc != BL_OK ? rc : prc;
                return;          /* stop taking points: root ends the sweep */
            }
        }
    }
}

/* A group member's loop: run what the leader says until it says n. */
static void follow(run_state *s)
{
    for (;;) {
        void *buf = NULL;
        size_t len = 0;
        int rc = bl__dist_bcast(s->ctx, s->group, 0, &buf, &len);
        uint64_t i = s->n;
        if (rc == BL_OK && len == sizeof i)
            memcpy(&i, buf, sizeof i);
        free(buf);
        if (rc != BL_OK || i >= s->n) {
            if (rc != BL_OK && s->code == BL_OK)
                s->code = rc;
            return;
        }
        bl_sweep_point p;
        rc = run_here(s, (size_t)i, &p);
        if (rc != BL_OK && s->code == BL_OK)
            s->code = rc;
    }
}

/* Root, at the end: {code, count} then the records in index order, the fatal one last. */
static int pack_all(run_state *s, char **out, size_t *len)
{
    size_t total = 2 * sizeof(int32_t);
    for (size_t i = 0; i < s->n; i++)
        total += s->records[i].len;
    total += s->fatal.len;
    char *b = malloc(total);
    if (!b)
        return bl_error(s->ctx, BL_ENOMEM, "out of memory sending the sweep's results");
    int32_t head[2] = {s->code, 0};
    size_t at = sizeof head;
    for (size_t i = 0; i < s->n; i++)
        if (s->records[i].bytes) {
            memcpy(b + at, s->records[i].bytes, s->records[i].len);
            at += s->records[i].len;
            head[1]++;
        }
    if (s->fatal.bytes) {
        memcpy(b + at, s->fatal.bytes, s->fatal.len);
        at += s->fatal.len;
        head[1]++;
    }
    memcpy(b, head, sizeof head);
    *out = b;
    *len = at;
    return BL_OK;
}

/* Not root, at the end: records every point in index order (unpacking those run elsewhere);
 * returns the sweep's code. */
static int replay(run_state *s, const char *b, size_t len)
{
    int32_t head[2];
    if (len < sizeof head)
        return bl_error(s->ctx, BL_EIO, "distributed sweep: rank 0 sent no results");
    memcpy(head, b, sizeof head);
    size_t at = sizeof head;
    int own = s->code;
    for (int32_t k = 0; k < head[1]; k++) {
        wire w;
        char *msg = NULL;
        const char *data = NULL;
        size_t used = read_record(b + at, len - at, &w, &msg, &data);
        if (!used || w.index >= s->n) {
            free(msg);
            return bl_error(s->ctx, BL_EIO, "distributed sweep: malformed results from rank 0");
        }
        at += used;
        int rc = BL_OK;
        if (w.rc != BL_OK) {
            /* the point that ended the sweep: its error becomes this rank's too */
            rc = s->ran[w.index] && own != BL_OK
                     ? own
                     : bl_sweep_unpack(s->sw, s->ctx, w.index, w.rc, msg, data, w.data_len,
                                       &w.point);
            free(msg);
            return rc != BL_OK ? rc : bl_error(s->ctx, w.rc, "%s", "");
        }
        if (!s->ran[w.index])
            rc = bl_sweep_unpack(s->sw, s->ctx, w.index, BL_OK, msg, data, w.data_len,
                                 &w.point);
        free(msg);
        if (rc == BL_OK)
            rc = bl_sweep_record(s->sw, s->ctx, w.index, &w.point);
        if (rc != BL_OK)
            return rc;
    }
    if (head[0] != BL_OK)    /* rank 0's own error (its message is on its stderr) */
        return own != BL_OK ? own : bl_error(s->ctx, BL_EIO, "the sweep ended with an error "
                                             "on rank 0 (%s)", bl_strerror(head[0]));
    return BL_OK;
}

static int dist_execute(const bl_sweep_executor *self, bl_sweep *sw, bl_ctx *ctx)
{
    int per = (int)(intptr_t)self->state;
    bl_dist_comm *world = bl__dist_world();
    int size = bl__dist_size(world), rank = bl__dist_rank(world);
    if (per < 1 || size % per != 0)
        return bl_error(ctx, BL_EINVAL, "ranks_per_run = %d does not divide the %d ranks of "
                        "the job", per, size);
    run_state s = {.sw = sw, .ctx = ctx, .n = bl_sweep_points(sw), .world = world,
                   .root = rank == 0};
    s.ran = calloc(s.n ? s.n : 1, sizeof *s.ran);
    s.records = calloc(s.n ? s.n : 1, sizeof *s.records);
    /* Collective calls below run on every rank whatever happened before, in the same order. */
    int rc = bl__dist_split(ctx, world, rank / per, rank, &s.group);
    if (rc == BL_OK)
        rc = bl__dist_counter_new(ctx, world, &s.counter);
    if (rc != BL_OK || !s.ran || !s.records) {
        bl__dist_counter_free(s.counter);
        bl__dist_comm_free(s.group);
        free(s.ran);
        free(s.records);
        return rc != BL_OK ? rc : bl_error(ctx, BL_ENOMEM, "out of memory starting a sweep");
    }
    s.leader = bl__dist_rank(s.group) == 0;
    if (s.leader)
        lead(&s);
    else
        follow(&s);

    if (s.root) {
        /* stop the queue (after an error: the points handed out still come back) */
        uint64_t c = 0;
        if (bl__dist_counter_add(ctx, s.counter, s.n + 1, &c) != BL_OK && s.code == BL_OK)
            s.code = BL_EIO;
        s.handed = c < s.n ? (size_t)c : s.n;
        collect(&s, true);
    }
    int frc = bl__dist_flush(ctx);
    if (frc != BL_OK && s.code == BL_OK)
        s.code = frc;
    bl__dist_counter_free(s.counter);

    char *all = NULL;
    size_t len = 0;
    if (s.root && pack_all(&s, &all, &len) != BL_OK) {
        /* still take part in the broadcast: the other ranks wait for it */
        int32_t head[2] = {BL_ENOMEM, 0};
        all = malloc(sizeof head);
        len = all ? sizeof head : 0;
        if (all)
            memcpy(all, head, sizeof head);
        s.code = BL_ENOMEM;
    }
    char *saved = s.code != BL_OK ? strdup(bl_errmsg(ctx)) : NULL;
    int brc = bl__dist_bcast(ctx, world, 0, (void **)&all, &len);
    if (s.root) {
        rc = s.code;
        if (rc != BL_OK)
            bl_error(ctx, rc, "%s", saved ? saved : "");
    } else {
        rc = brc != BL_OK ? brc : replay(&s, all, len);
    }
    if (brc != BL_OK && rc == BL_OK)
        rc = brc;
    free(saved);
    free(all);
    for (size_t i = 0; i < s.n; i++)
        free(s.records[i].bytes);
    free(s.fatal.bytes);
    free(s.records);
    free(s.ran);
    bl__dist_comm_free(s.group);
    return rc;
}

bool bl_sweep_distributed(int ranks_per_run, bl_sweep_executor *out)
{
    if (bl__dist_size(bl__dist_world()) < 2)
        return false;
    *out = (bl_sweep_executor){"distributed", dist_execute, (void *)(intptr_t)ranks_per_run};
    return true;
}
