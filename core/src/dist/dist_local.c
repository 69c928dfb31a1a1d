/* Local worker processes (dist/dist_backend.h): batchlab run --workers N, no MPI.
 *
 *   rank 0 ═══ socketpair ═══ rank 1       a star: rank 0 holds one socket per worker, each
 *          ═══ socketpair ═══ rank 2       worker one socket to rank 0; every message is a
 *          …                               frame {tag, length} + bytes
 *   shared: a MAP_SHARED anonymous page of counters, mapped before the forks (the sweep's work
 *           queue: an atomic fetch-and-add from any rank)
 *
 * A post queues its frame and writes what the socket takes without blocking; the rest goes out
 * at the next call that moves bytes (post, flush, receive, bcast, counter_add), so a worker
 * never waits for rank 0 to be free to read. Waiting (receive, bcast, flush) sleeps in poll(2)
 * rather than spinning. Frames are read into an inbox from which receive takes the first of its
 * tag. A connection that closes is a dead peer: rank 0 names the worker (rank, pid and how it
 * ended), a worker says that rank 0 ended. Groups (bl__dist_split) exist only as one rank
 * each, and the reducer answers BL_EUNSUPPORTED: data-parallel training needs MPI.
 *
 * Every process runs the same build on the same machine, so frames carry native integers. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1 /* MAP_ANONYMOUS */
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "base/clock.h"
#include "device/device_internal.h"
#include "dist/dist_backend.h"

/* Tags of the layer's own frames; the engine's are positive. */
enum { TAG_BCAST = -1, TAG_SYNC = -2, TAG_SPLIT = -3 };

#define N_SLOTS 64              /* counters alive at once (a sweep holds one) */
#define ABORT_QUIET_MS 1000     /* bl_dist_abort: the workers' time to end by themselves, */
#define ABORT_GRACE_MS 10000    /* then SIGTERM, and SIGKILL after this */

typedef struct frame_head {
    int32_t tag;
    uint32_t zero;
    uint64_t len;
} frame_head;

typedef struct out_frame {
    frame_head head;
    char *body;                  /* malloc'd, owned */
    size_t off;                  /* bytes of head + body written */
    struct out_frame *next;
} out_frame;

typedef struct in_frame {
    int src, tag;
    char *body;                  /* malloc'd (NULL when len is 0) */
    size_t len;
    struct in_frame *next;
} in_frame;

typedef struct peer {
    int fd;                      /* -1: no connection (closed, or none: worker to worker) */
    pid_t pid;                   /* rank 0: the worker's process */
    bool gone;                   /* its connection closed */
    bool lost;                   /* ... with frames to it not yet written */
    bool reaped;                 /* rank 0: waitpid answered; `status` holds how it ended */
    int status;
    frame_head head;             /* the frame being read */
    size_t head_got;
    char *body;
    size_t body_got;
    out_frame *out, *out_last;   /* queued to send, in order */
} peer;

struct bl_dist_comm {
    int rank, size;              /* the world, or a group of one (bl__dist_split) */
};

struct bl_dist_counter {
    _Atomic uint64_t *value;     /* a slot of the shared page, or `own` in a group of one */
    _Atomic uint64_t own;
    int slot;                    /* -1: own */
};

static const bl__dist_backend local_world;

static struct {
    bool running;
    int rank, size;
    pid_t parent;                /* a worker: rank 0's pid */
    peer *peers;                 /* by rank: rank 0 holds 1 … size-1; a worker holds [0] */
    struct pollfd *pfds;
    in_frame *in, *in_last;      /* arrived, not yet received */
    _Atomic uint64_t *slots;     /* the shared page: N_SLOTS counters */
    size_t page;
    bool slot_used[N_SLOTS];
    bool waited;                 /* rank 0: the workers were waited for */
    bl_dist_comm world;
} g;

/* ---- connections ---------------------------------------------------------------------------- */

static void close_peer(peer *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    p->gone = true;
    free(p->body);
    p->body = NULL;
    p->head_got = p->body_got = 0;
    p->lost = p->lost || p->out;
    while (p->out) {
        out_frame *f = p->out;
        p->out = f->next;
        free(f->body);
        free(f);
    }
    p->out_last = NULL;
}

/* Rank 0: whether worker k has ended, and how (waitpid without blocking). */
static bool reap(peer *p)
{
    if (p->reaped || p->pid <= 0)
        return p->reaped;
    int st = 0;
    pid_t r;
    do
        r = waitpid(p->pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == p->pid) {
        p->reaped = true;
        p->status = st;
    }
    return p->reaped;
}

/* "worker 2 (pid 1234) was killed by signal 9 (Killed)" into buf. */
static void describe(int k, peer *p, char *buf, size_t cap)
{
    if (!p->reaped)
        snprintf(buf, cap, "worker %d (pid %ld) closed its connection", k, (long)p->pid);
    else if (WIFSIGNALED(p->status))
        snprintf(buf, cap, "worker %d (pid %ld) was killed by signal %d (%s)", k, (long)p->pid,
                 WTERMSIG(p->status), strsignal(WTERMSIG(p->status)));
    else
        snprintf(buf, cap, "worker %d (pid %ld) exited with status %d", k, (long)p->pid,
                 WIFEXITED(p->status) ? WEXITSTATUS(p->status) : -1);
}

/* The error for a connection that closed: rank 0 names the worker (giving it a second to be
 * reaped, so that the message says how it ended), a worker names rank 0. */
static int peer_gone(bl_ctx *ctx, int k)
{
    if (g.rank != 0)
        return bl_error(ctx, BL_EIO, "local workers: rank 0 (pid %ld) ended; worker %d stops",
                        (long)g.parent, g.rank);
    peer *p = &g.peers[k];
    for (int i = 0; i < 50 && !reap(p); i++)
        bl__sleep_us(20000);
    char what[160];
    describe(k, p, what, sizeof what);
    return bl_error(ctx, BL_EIO, "local workers: %s", what);
}

/* The first peer this rank talks to whose connection closed, or -1. */
static int first_gone(void)
{
    for (int k = 0; k < g.size; k++)
        if (k != g.rank && g.peers[k].gone)
            return k;
    return -1;
}

/* Writes what the socket takes of p's queue. */
static void write_peer(peer *p)
{
    while (p->out && p->fd >= 0) {
        out_frame *f = p->out;
        size_t hs = sizeof f->head, total = hs + f->head.len;
        struct iovec iov[2];
        int n = 0;
        if (f->off < hs)
            iov[n++] = (struct iovec){(char *)&f->head + f->off, hs - f->off};
        if (f->head.len > 0) {
            size_t boff = f->off > hs ? f->off - hs : 0;
            iov[n++] = (struct iovec){f->body + boff, f->head.len - boff};
        }
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = n};
        ssize_t w = sendmsg(p->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                close_peer(p);       /* EPIPE, ECONNRESET: it ended */
            return;
        }
        f->off += (size_t)w;
        if (f->off < total)
            return;                  /* the socket is full */
        p->out = f->next;
        if (!p->out)
            p->out_last = NULL;
        free(f->body);
        free(f);
    }
}

/* Reads what arrived from peer k into the inbox. */
static int read_peer(bl_ctx *ctx, int k)
{
    peer *p = &g.peers[k];
    while (p->fd >= 0) {
        char *dst;
        size_t want;
        if (p->head_got < sizeof p->head) {
            dst = (char *)&p->head + p->head_got;
            want = sizeof p->head - p->head_got;
        } else {
            dst = p->body + p->body_got;
            want = p->head.len - p->body_got;
        }
        ssize_t r = want ? read(p->fd, dst, want) : 0;
        if (want && r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                close_peer(p);
            return BL_OK;
        }
        if (want && r == 0) {
            close_peer(p);           /* EOF: it ended */
            return BL_OK;
        }
        if (p->head_got < sizeof p->head) {
            p->head_got += (size_t)r;
            if (p->head_got < sizeof p->head)
                continue;
            if (p->head.len > ((uint64_t)1 << 40)) {
                close_peer(p);
                return bl_error(ctx, BL_EIO, "local workers: a malformed frame from rank %d", k);
            }
            p->body_got = 0;
            p->body = p->head.len ? malloc((size_t)p->head.len) : NULL;
            if (p->head.len && !p->body)
                return bl_error(ctx, BL_ENOMEM, "local workers: out of memory receiving %llu "
                                "bytes", (unsigned long long)p->head.len);
        } else {
            p->body_got += (size_t)r;
        }
        if (p->body_got < p->head.len)
            continue;
        in_frame *f = malloc(sizeof *f);
        if (!f)
            return bl_error(ctx, BL_ENOMEM, "local workers: out of memory");
        *f = (in_frame){.src = k, .tag = p->head.tag, .body = p->body, .len = p->head.len};
        if (g.in_last)
            g.in_last->next = f;
        else
            g.in = f;
        g.in_last = f;
        p->body = NULL;
        p->head_got = p->body_got = 0;
    }
    return BL_OK;
}

/* Moves bytes both ways; with wait_ms > 0 first waits up to that long for any socket to be
 * ready (readable, writable with something queued, or closed). */
static int progress(bl_ctx *ctx, int wait_ms)
{
    if (wait_ms > 0) {
        nfds_t n = 0;
        for (int k = 0; k < g.size; k++) {
            peer *p = &g.peers[k];
            if (k == g.rank || p->fd < 0)
                continue;
            g.pfds[n++] = (struct pollfd){p->fd, (short)(POLLIN | (p->out ? POLLOUT : 0)), 0};
        }
        if (n > 0 && poll(g.pfds, n, wait_ms) < 0 && errno != EINTR)
            return bl_error(ctx, BL_EIO, "local workers: poll: %s", strerror(errno));
    }
    for (int k = 0; k < g.size; k++) {
        if (k == g.rank || g.peers[k].fd < 0)
            continue;
        write_peer(&g.peers[k]);
        int rc = read_peer(ctx, k);
        if (rc != BL_OK)
            return rc;
    }
    return BL_OK;
}

/* The first arrived frame with `tag` (from `src`, or any with src < 0), out of the inbox. */
static in_frame *take(int tag, int src)
{
    for (in_frame **at = &g.in, *prev = NULL; *at; prev = *at, at = &(*at)->next) {
        in_frame *f = *at;
        if (f->tag != tag || (src >= 0 && f->src != src))
            continue;
        *at = f->next;
        if (g.in_last == f)
            g.in_last = prev;
        return f;
    }
    return NULL;
}

/* Queues `len` bytes of body (taken) to rank `dest` and writes what goes at once. */
static int queue(bl_ctx *ctx, int dest, int tag, void *body, size_t len)
{
    peer *p = &g.peers[dest];
    if (p->gone) {
        free(body);
        return peer_gone(ctx, dest);
    }
    out_frame *f = malloc(sizeof *f);
    if (!f) {
        free(body);
        return bl_error(ctx, BL_ENOMEM, "local workers: out of memory sending %zu bytes", len);
    }
    *f = (out_frame){.head = {.tag = tag, .len = len}, .body = body};
    if (p->out_last)
        p->out_last->next = f;
    else
        p->out = f;
    p->out_last = f;
    write_peer(p);
    return p->lost ? peer_gone(ctx, dest) : BL_OK;
}

/* Waits until a frame with `tag` from `src` (any: -1) arrives; NULL with the error in ctx when
 * a connection it could come from closed first. */
static in_frame *await(bl_ctx *ctx, int tag, int src)
{
    for (;;) {
        if (progress(ctx, 0) != BL_OK)
            return NULL;
        in_frame *f = take(tag, src);
        if (f)
            return f;
        int gone = src >= 0 ? (g.peers[src].gone ? src : -1) : first_gone();
        if (gone >= 0) {
            peer_gone(ctx, gone);
            return NULL;
        }
        if (progress(ctx, 200) != BL_OK)
            return NULL;
    }
}

static int flush_all(bl_ctx *ctx)
{
    for (;;) {
        int rc = progress(ctx, 0);
        if (rc != BL_OK)
            return rc;
        /* a peer that read everything and ended is no error here (rank 0's last broadcast:
         * a worker may be gone before rank 0 looks again) */
        bool pending = false;
        for (int k = 0; k < g.size; k++) {
            if (k != g.rank && g.peers[k].lost)
                return peer_gone(ctx, k);
            pending = pending || (k != g.rank && g.peers[k].out);
        }
        if (!pending)
            return BL_OK;
        rc = progress(ctx, 200);
        if (rc != BL_OK)
            return rc;
    }
}

/* Rank 0 sends `len` bytes of buf to every worker with `tag` and waits until they are
 * written; the workers still connected get them even when one is gone (the error names it). */
static int send_all(bl_ctx *ctx, int tag, const void *buf, size_t len)
{
    int rc = BL_OK;
    for (int k = 1; k < g.size; k++) {
        if (g.peers[k].gone) {
            if (rc == BL_OK)
                rc = peer_gone(ctx, k);
            continue;
        }
        char *copy = len ? malloc(len) : NULL;
        if (len && !copy)
            return bl_error(ctx, BL_ENOMEM, "local workers: out of memory sending %zu bytes",
                            len);
        if (len)
            memcpy(copy, buf, len);
        int qrc = queue(ctx, k, tag, copy, len);
        if (qrc != BL_OK && rc == BL_OK)
            rc = qrc;
    }
    int frc = flush_all(ctx);
    return rc != BL_OK ? rc : frc;
}

/* A worker: sends `len` bytes of mine with `tag` to rank 0 and waits for its answer, a frame
 * with the same tag (*reply malloc'd, NULL when empty). */
static int to_root(bl_ctx *ctx, int tag, const void *mine, size_t len, char **reply,
                   size_t *reply_len)
{
    *reply = NULL;
    *reply_len = 0;
    char *copy = len ? malloc(len) : NULL;
    if (len && !copy)
        return bl_error(ctx, BL_ENOMEM, "local workers: out of memory");
    if (len)
        memcpy(copy, mine, len);
    int rc = queue(ctx, 0, tag, copy, len);
    in_frame *f = rc == BL_OK ? await(ctx, tag, 0) : NULL;
    if (!f)
        return rc != BL_OK ? rc : bl_errcode(ctx);
    *reply = f->body;
    *reply_len = f->len;
    free(f);
    return BL_OK;
}

/* Rank 0: one frame with `tag` from every worker, its bytes in bodies[k] (malloc'd; the
 * caller frees them) and lens[k], or dropped when bodies is NULL. Rank 0 answers with
 * send_all. */
static int gather(bl_ctx *ctx, int tag, char **bodies, size_t *lens)
{
    for (int k = 1; k < g.size; k++) {
        in_frame *f = await(ctx, tag, k);
        if (!f)
            return bl_errcode(ctx);
        if (bodies) {
            bodies[k] = f->body;
            lens[k] = f->len;
        } else {
            free(f->body);
        }
        free(f);
    }
    return BL_OK;
}

/* ---- the world ------------------------------------------------------------------------------ */

static void release(void)
{
    for (int k = 0; g.peers && k < g.size; k++)
        if (k != g.rank)
            close_peer(&g.peers[k]);
    while (g.in) {
        in_frame *f = g.in;
        g.in = f->next;
        free(f->body);
        free(f);
    }
    g.in_last = NULL;
    free(g.peers);
    free(g.pfds);
    if (g.slots)
        munmap((void *)g.slots, g.page);
    memset(&g, 0, sizeof g);
}

/* Rank 0: closes the connections (a worker waiting for rank 0 then stops) and waits for every
 * worker; with a grace period, SIGKILL for those still there after it. */
/* Rank 0: reaps the workers as they end, for up to `ms` (< 0: for as long as it takes);
 * whether all have ended. */
static bool reap_all(long ms)
{
    for (long waited = 0;; waited += 20) {
        bool all = true;
        for (int k = 1; k < g.size; k++)
            all = reap(&g.peers[k]) && all;
        if (all || (ms >= 0 && waited >= ms))
            return all;
        bl__sleep_us(20000);
    }
}

static void wait_children(long grace_ms)
{
    for (int k = 1; k < g.size; k++)
        close_peer(&g.peers[k]);
    if (!reap_all(grace_ms))
        for (int k = 1; k < g.size; k++)
            if (!g.peers[k].reaped && g.peers[k].pid > 0) {
                kill(g.peers[k].pid, SIGKILL);
                int st = 0;
                while (waitpid(g.peers[k].pid, &st, 0) < 0 && errno == EINTR) {
                }
                g.peers[k].reaped = true;
                g.peers[k].status = st;
            }
    g.waited = true;
}

int bl__dist_local_wait(bl_ctx *ctx, int *status)
{
    *status = 0;
    if (!g.running || g.rank != 0)
        return BL_OK;
    if (!g.waited) {
        bl_ctx *scratch = bl_ctx_new();
        if (scratch)
            flush_all(scratch);          /* what is queued, best effort */
        bl_ctx_free(scratch);
        wait_children(-1);
    }
    char msg[1024] = "";
    size_t at = 0;
    int failed = 0;
    for (int k = 1; k < g.size; k++) {
        peer *p = &g.peers[k];
        if (WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0)
            continue;
        if (!failed++)
            *status = WIFEXITED(p->status) ? WEXITSTATUS(p->status) : 1;
        char what[160];
        describe(k, p, what, sizeof what);
        if (at < sizeof msg)
            at += (size_t)snprintf(msg + at, sizeof msg - at, "%s%s", failed > 1 ? "; " : "",
                                   what);
    }
    if (!failed)
        return BL_OK;
    return bl_error(ctx, BL_EIO, "local workers: %s", msg);
}

static void finalize(void)
{
    if (!g.running)
        return;
    if (g.rank == 0) {
        int status;
        bl_ctx *ctx = bl_ctx_new();
        if (ctx)
            bl__dist_local_wait(ctx, &status);
        bl_ctx_free(ctx);
    } else {
        bl_ctx *ctx = bl_ctx_new();
        if (ctx)
            flush_all(ctx);
        bl_ctx_free(ctx);
    }
    release();
}

static void abort_all(int status)
{
    (void)status;
    if (!g.running || g.rank != 0 || g.waited)
        return;                      /* a worker: its exit closes its connection */
    /* closed connections end the workers that wait for rank 0, and a worker that failed as
     * rank 0 did ends by itself: a moment for those, then SIGTERM for the ones training */
    for (int k = 1; k < g.size; k++)
        close_peer(&g.peers[k]);
    if (!reap_all(ABORT_QUIET_MS))
        for (int k = 1; k < g.size; k++)
            if (!g.peers[k].reaped)
                kill(g.peers[k].pid, SIGTERM);
    wait_children(ABORT_GRACE_MS);
}

static bl_dist_comm *world(void)
{
    return g.running ? &g.world : NULL;
}

static int rank(const bl_dist_comm *comm)
{
    return comm->rank;
}

static int size(const bl_dist_comm *comm)
{
    return comm->size;
}

static bool is_world(const bl_dist_comm *comm)
{
    return comm == &g.world;
}

/* Groups of one rank each, the only kind without MPI: collective, so every rank learns
 * whether every colour is different (rank 0 gathers them and answers). */
static int split(bl_ctx *ctx, bl_dist_comm *comm, int color, int key, bl_dist_comm **out)
{
    (void)key;
    if (is_world(comm) && g.size > 1) {
        int32_t ok = 1;
        int rc;
        if (g.rank == 0) {
            char **bodies = calloc((size_t)g.size, sizeof *bodies);
            size_t *lens = calloc((size_t)g.size, sizeof *lens);
            rc = bodies && lens ? gather(ctx, TAG_SPLIT, bodies, lens)
                                : bl_error(ctx, BL_ENOMEM, "local workers: out of memory");
            for (int k = 0; rc == BL_OK && k < g.size; k++) {
                int32_t ck = color;
                if (k > 0 && lens[k] == sizeof ck)
                    memcpy(&ck, bodies[k], sizeof ck);
                for (int j = 0; j < k; j++) {
                    int32_t cj = color;
                    if (j > 0 && lens[j] == sizeof cj)
                        memcpy(&cj, bodies[j], sizeof cj);
                    ok = ok && cj != ck;
                }
            }
            for (int k = 0; bodies && k < g.size; k++)
                free(bodies[k]);
            free(bodies);
            free(lens);
            if (rc == BL_OK)
                rc = send_all(ctx, TAG_SPLIT, &ok, sizeof ok);
        } else {
            int32_t mine = color;
            char *reply = NULL;
            size_t rl = 0;
            rc = to_root(ctx, TAG_SPLIT, &mine, sizeof mine, &reply, &rl);
            if (rc == BL_OK && rl == sizeof ok)
                memcpy(&ok, reply, sizeof ok);
            free(reply);
        }
        if (rc != BL_OK)
            return rc;
        if (!ok)
            return bl_error(ctx, BL_EUNSUPPORTED, "groups of ranks that train one run together "
                            "(ranks_per_run > 1) need MPI (mpirun -np N batchlab run ...): "
                            "local workers (--workers) each train whole runs");
    }
    bl_dist_comm *c = malloc(sizeof *c);
    if (!c)
        return bl_error(ctx, BL_ENOMEM, "local workers: out of memory");
    *c = (bl_dist_comm){0, 1};
    *out = c;
    return BL_OK;
}

static void comm_free(bl_dist_comm *comm)
{
    free(comm);
}

static int counter_new(bl_ctx *ctx, bl_dist_comm *comm, bl_dist_counter **out)
{
    bl_dist_counter *c = calloc(1, sizeof *c);
    if (!c)
        return bl_error(ctx, BL_ENOMEM, "local workers: out of memory making a counter");
    c->slot = -1;
    c->value = &c->own;
    atomic_init(&c->own, 0);
    if (is_world(comm) && g.size > 1) {
        /* the same slot on every rank: they make their counters in the same order */
        int slot = 0;
        while (slot < N_SLOTS && g.slot_used[slot])
            slot++;
        if (slot == N_SLOTS) {
            free(c);
            return bl_error(ctx, BL_EUNSUPPORTED, "local workers: more than %d shared "
                            "counters at once", N_SLOTS);
        }
        /* a barrier: every rank's last add to this slot (an earlier sweep's) comes before
         * rank 0 sets it to 0, which comes before anyone's first add */
        int rc;
        if (g.rank == 0) {
            rc = gather(ctx, TAG_SYNC, NULL, NULL);
            if (rc == BL_OK) {
                atomic_store(&g.slots[slot], 0);
                rc = send_all(ctx, TAG_SYNC, NULL, 0);
            }
        } else {
            char *reply = NULL;
            size_t rl = 0;
            rc = to_root(ctx, TAG_SYNC, NULL, 0, &reply, &rl);
            free(reply);
        }
        if (rc != BL_OK) {
            free(c);
            return rc;
        }
        g.slot_used[slot] = true;
        c->slot = slot;
        c->value = &g.slots[slot];
    }
    *out = c;
    return BL_OK;
}

static int counter_add(bl_ctx *ctx, bl_dist_counter *counter, uint64_t add, uint64_t *before)
{
    *before = atomic_fetch_add(counter->value, add);
    return counter->slot >= 0 ? progress(ctx, 0) : BL_OK;   /* send what is queued */
}

static void counter_free(bl_dist_counter *counter)
{
    if (counter->slot >= 0)
        g.slot_used[counter->slot] = false;
    free(counter);
}

/* ---- messages ------------------------------------------------------------------------------- */

static int no_group(bl_ctx *ctx, const char *what)
{
    return bl_error(ctx, BL_EUNSUPPORTED, "local workers: %s within a group of one rank", what);
}

static int post(bl_ctx *ctx, bl_dist_comm *comm, int dest, int tag, void *buf, size_t len)
{
    if (!is_world(comm) || dest < 0 || dest >= g.size || dest == g.rank ||
        (g.rank != 0 && dest != 0)) {
        free(buf);
        if (!is_world(comm))
            return no_group(ctx, "sending");
        return bl_error(ctx, BL_EUNSUPPORTED, "local workers: rank %d cannot send to rank %d "
                        "(a worker talks to rank 0 only)", g.rank, dest);
    }
    return queue(ctx, dest, tag, buf, len);
}

static int flush(bl_ctx *ctx)
{
    return g.running ? flush_all(ctx) : BL_OK;
}

static int receive(bl_ctx *ctx, bl_dist_comm *comm, int tag, bool wait, int *src, void **buf,
                   size_t *len)
{
    if (!is_world(comm))
        return no_group(ctx, "receiving");
    for (;;) {
        int rc = progress(ctx, 0);
        if (rc != BL_OK)
            return rc;
        in_frame *f = take(tag, -1);
        if (f) {
            *src = f->src;
            *buf = f->body ? f->body : malloc(1);
            *len = f->len;
            free(f);
            return *buf ? BL_OK : bl_error(ctx, BL_ENOMEM, "local workers: out of memory");
        }
        int gone = first_gone();
        if (gone >= 0)
            return peer_gone(ctx, gone);
        if (!wait)
            return BL_OK;
        rc = progress(ctx, 200);
        if (rc != BL_OK)
            return rc;
    }
}

static int bcast(bl_ctx *ctx, bl_dist_comm *comm, int root, void **buf, size_t *len)
{
    if (comm->size == 1)
        return BL_OK;                /* a group of one: root's buffer is everyone's */
    if (root != 0)
        return bl_error(ctx, BL_EUNSUPPORTED, "local workers: a broadcast from rank %d (only "
                        "rank 0 broadcasts)", root);
    if (g.rank == 0)
        return send_all(ctx, TAG_BCAST, *buf, *len);
    *buf = NULL;
    *len = 0;
    in_frame *f = await(ctx, TAG_BCAST, 0);
    if (!f)
        return bl_errcode(ctx);
    *buf = f->body;
    *len = f->len;
    free(f);
    return BL_OK;
}

/* ---- the reducer: none across workers --------------------------------------------------------- */

static int needs_mpi(bl_ctx *ctx)
{
    return bl_error(ctx, BL_EUNSUPPORTED, "data_parallel = true over several processes needs "
                    "MPI (mpirun -np N batchlab run ...): local workers (--workers) each train "
                    "whole runs");
}

static int no_sum_f32(const bl_reducer *self, bl_ctx *ctx, float *buf, size_t n)
{
    return needs_mpi(ctx);
}

static int no_sum_f64(const bl_reducer *self, bl_ctx *ctx, double *buf, size_t n)
{
    return needs_mpi(ctx);
}

static int no_broadcast(const bl_reducer *self, bl_ctx *ctx, void *buf, size_t bytes, int root)
{
    return needs_mpi(ctx);
}

static void reducer(bl_dist_comm *comm, bl_reducer *out)
{
    if (comm->size == 1) {
        bl__dist_single.reducer(comm, out);
        return;
    }
    *out = (bl_reducer){.size = sizeof *out, .ranks = comm->size, .rank = comm->rank,
                        .sum_f32 = no_sum_f32, .sum_f64 = no_sum_f64,
                        .broadcast = no_broadcast, .state = comm};
}

/* ---- start ---------------------------------------------------------------------------------- */

static void tune_socket(int fd)
{
    int bytes = 4 << 20;             /* room for results while rank 0 trains (capped by the
                                      * system's limit) */
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
}

int bl__dist_local_start(bl_ctx *ctx, int workers, const bl__dist_backend **out)
{
    *out = NULL;
    g.size = workers;
    g.page = (size_t)sysconf(_SC_PAGESIZE);
    if (g.page < N_SLOTS * sizeof(uint64_t))
        g.page = N_SLOTS * sizeof(uint64_t);
    void *page = mmap(NULL, g.page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        int e = errno;
        memset(&g, 0, sizeof g);
        return bl_error(ctx, BL_EIO, "local workers: shared memory: %s", strerror(e));
    }
    g.slots = page;
    if (!atomic_is_lock_free(&g.slots[0])) {
        release();
        return bl_error(ctx, BL_EUNSUPPORTED, "local workers: this machine has no lock-free "
                        "64-bit atomics to share a counter between processes");
    }
    for (int i = 0; i < N_SLOTS; i++)
        atomic_init(&g.slots[i], 0);
    g.peers = calloc((size_t)workers, sizeof *g.peers);
    g.pfds = calloc((size_t)workers, sizeof *g.pfds);
    if (!g.peers || !g.pfds) {
        release();
        return bl_error(ctx, BL_ENOMEM, "local workers: out of memory");
    }
    for (int k = 0; k < workers; k++)
        g.peers[k].fd = -1;
    g.parent = getpid();
    g.running = true;
    fflush(NULL);
    for (int k = 1; k < workers; k++) {
        int sv[2];
        pid_t pid = -1;
        int e = 0;
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
            e = errno;
        else if ((pid = fork()) < 0) {
            e = errno;
            close(sv[0]);
            close(sv[1]);
        }
        if (e) {
            for (int j = 1; j < k; j++)          /* the ones started: ended, waited for */
                kill(g.peers[j].pid, SIGKILL);
            g.size = k;
            wait_children(-1);
            release();
            return bl_error(ctx, BL_EIO, "local workers: starting worker %d: %s", k,
                            strerror(e));
        }
        if (pid == 0) {
            /* worker k: one connection, to rank 0 (the sockets to earlier workers are rank
             * 0's, not its own: closed, so that their ends see rank 0 alone) */
            close(sv[0]);
            for (int j = 1; j < k; j++) {
                close(g.peers[j].fd);
                g.peers[j].fd = -1;
                g.peers[j].pid = 0;
            }
            g.rank = k;
            g.peers[0].fd = sv[1];
            tune_socket(sv[1]);
#ifdef __linux__
            prctl(PR_SET_PDEATHSIG, SIGTERM);    /* rank 0 gone: end the run, as Ctrl-C */
#endif
            if (getppid() != g.parent) {
                release();
                return bl_error(ctx, BL_EIO, "local workers: rank 0 ended before worker %d "
                                "started", k);
            }
            break;
        }
        close(sv[1]);
        g.peers[k].fd = sv[0];
        g.peers[k].pid = pid;
        tune_socket(sv[0]);
    }
    g.world = (bl_dist_comm){g.rank, g.size};
    bl__device_cpu_share(workers);
    *out = &local_world;
    return BL_OK;
}

static const bl__dist_backend local_world = {
    .name = "local", .finalize = finalize, .abort = abort_all, .world = world, .rank = rank,
    .size = size, .split = split, .comm_free = comm_free, .counter_new = counter_new,
    .counter_add = counter_add, .counter_free = counter_free, .post = post, .flush = flush,
    .receive = receive, .bcast = bcast, .reducer = reducer,
};
