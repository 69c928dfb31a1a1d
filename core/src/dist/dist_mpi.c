/* The distributed layer over MPI (dist/dist_backend.h): the only file of libbatchlab that
 * calls MPI. Built when CMake found MPI (BATCHLAB_MPI); dist_nompi.c takes its place
 * otherwise. */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/grow.h"
#include "dist/dist_backend.h"

struct bl_dist_comm {
    MPI_Comm comm;
    int rank, size;
};

struct bl_dist_counter {
    MPI_Win win;
    uint64_t *value;         /* rank 0: the counter; others: unused */
};

typedef struct posted {
    MPI_Request req;
    void *buf;
} posted;

static struct {
    bool started;            /* bl_dist_init called MPI_Init_thread */
    bool running;            /* MPI is initialized and the world is set */
    bl_dist_comm world;
    posted *posts;
    size_t n_posts, cap_posts;
} g;

static int mpi_fail(bl_ctx *ctx, int err, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(err, msg, &len);
    return bl_error(ctx, BL_EIO, "MPI: %s failed: %s", what, msg);
}

/* A short sleep between polls: waiting ranks leave their cores to the ranks that train. */
static void nap(void)
{
    bl__sleep_us(200);
}

static int wait_request(bl_ctx *ctx, MPI_Request *req, const char *what)
{
    for (int polls = 0;; polls++) {
        int done = 0;
        int err = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (err != MPI_SUCCESS)
            return mpi_fail(ctx, err, what);
        if (done)
            return BL_OK;
        if (polls > 2000)    /* a short spin first: an allreduce among ranks in step */
            nap();
    }
}

/* ---- the world ----------------------------------------------------------------------------- */

bool bl_dist_built(void)
{
    return true;
}

static bool launched(void)
{
    const char *force = getenv("BATCHLAB_MPI_INIT");
    if (force && *force)
        return strcmp(force, "0") != 0;
    return bl__dist_mpi_launched();
}

static const bl__dist_backend mpi_world;

int bl__dist_mpi_start(bl_ctx *ctx, const bl__dist_backend **out)
{
    *out = NULL;
    if (g.running) {
        *out = &mpi_world;
        return BL_OK;
    }
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        if (!launched())
            return BL_OK;
        int provided = 0;
        int err = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (err != MPI_SUCCESS)
            return bl_error(ctx, BL_EIO, "MPI_Init_thread failed (code %d)", err);
        g.started = true;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    g.world.comm = MPI_COMM_WORLD;
    MPI_Comm_rank(MPI_COMM_WORLD, &g.world.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g.world.size);
    g.running = true;
    *out = &mpi_world;
    return BL_OK;
}

static int flush(bl_ctx *ctx);

static void finalize(void)
{
    if (!g.running)
        return;
    bl_ctx *ctx = bl_ctx_new();
    flush(ctx);
    bl_ctx_free(ctx);
    free(g.posts);
    g.posts = NULL;
    g.n_posts = g.cap_posts = 0;
    g.running = false;
    if (g.started) {
        int fin = 0;
        MPI_Finalized(&fin);
        if (!fin)
            MPI_Finalize();
        g.started = false;
    }
}

static void abort_all(int status)
{
    if (g.running)
        MPI_Abort(MPI_COMM_WORLD, status ? status : 1);
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

static int split(bl_ctx *ctx, bl_dist_comm *comm, int color, int key, bl_dist_comm **out)
{
    bl_dist_comm *c = calloc(1, sizeof *c);
    if (!c)
        return bl_error(ctx, BL_ENOMEM, "out of memory splitting a communicator");
    int err = MPI_Comm_split(comm->comm, color, key, &c->comm);
    if (err != MPI_SUCCESS) {
        free(c);
        return mpi_fail(ctx, err, "MPI_Comm_split");
    }
    MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(c->comm, &c->rank);
    MPI_Comm_size(c->comm, &c->size);
    *out = c;
    return BL_OK;
}

static void comm_free(bl_dist_comm *comm)
{
    MPI_Comm_free(&comm->comm);
    free(comm);
}

/* ---- the counter: one uint64 in a window on rank 0, fetch-and-add from anywhere ------------ */

static int counter_new(bl_ctx *ctx, bl_dist_comm *comm, bl_dist_counter **out)
{
    bl_dist_counter *c = calloc(1, sizeof *c);
    if (!c)
        return bl_error(ctx, BL_ENOMEM, "out of memory making a shared counter");
    MPI_Aint bytes = comm->rank == 0 ? (MPI_Aint)sizeof(uint64_t) : 0;
    int err = MPI_Win_allocate(bytes, (int)sizeof(uint64_t), MPI_INFO_NULL, comm->comm,
                               &c->value, &c->win);
    if (err != MPI_SUCCESS) {
        free(c);
        return mpi_fail(ctx, err, "MPI_Win_allocate");
    }
    if (comm->rank == 0)
        *c->value = 0;
    MPI_Barrier(comm->comm);         /* the value is set before anyone adds */
    MPI_Win_lock_all(MPI_MODE_NOCHECK, c->win);
    *out = c;
    return BL_OK;
}

static int counter_add(bl_ctx *ctx, bl_dist_counter *counter, uint64_t add, uint64_t *before)
{
    int err = MPI_Fetch_and_op(&add, before, MPI_UINT64_T, 0, 0, MPI_SUM, counter->win);
    if (err == MPI_SUCCESS)
        err = MPI_Win_flush(0, counter->win);
    return err == MPI_SUCCESS ? BL_OK : mpi_fail(ctx, err, "MPI_Fetch_and_op");
}

static void counter_free(bl_dist_counter *counter)
{
    MPI_Win_unlock_all(counter->win);
    MPI_Win_free(&counter->win);
    free(counter);
}

/* ---- messages ------------------------------------------------------------------------------ */

/* Frees the buffers of the posted sends that completed; with `wait`, waits for each. A send
 * that failed keeps its buffer (MPI may still hold it) and its error is returned (the first). */
static int reap(bl_ctx *ctx, bool wait)
{
    size_t keep = 0;
    int rc = BL_OK;
    for (size_t i = 0; i < g.n_posts; i++) {
        posted *p = &g.posts[i];
        int done = 0, err;
        if (wait) {
            err = wait_request(ctx, &p->req, "MPI_Isend");
            done = err == BL_OK;
        } else {
            int e = MPI_Test(&p->req, &done, MPI_STATUS_IGNORE);
            err = e == MPI_SUCCESS ? BL_OK : mpi_fail(ctx, e, "MPI_Isend");
        }
        if (err != BL_OK && rc == BL_OK)
            rc = err;
        if (done) {
            free(p->buf);
            continue;
        }
        g.posts[keep++] = *p;
    }
    g.n_posts = keep;
    return rc;
}

static int post(bl_ctx *ctx, bl_dist_comm *comm, int dest, int tag, void *buf, size_t len)
{
    if (len > (size_t)INT32_MAX) {
        free(buf);
        return bl_error(ctx, BL_EINVAL, "MPI: a message of %zu bytes is too large", len);
    }
    int rc = reap(ctx, false);
    if (rc == BL_OK) {
        posted *p = bl__grow(g.posts, &g.cap_posts, g.n_posts + 1, sizeof *g.posts);
        if (!p)
            rc = bl_error(ctx, BL_ENOMEM, "out of memory posting a message");
        else
            g.posts = p;
    }
    if (rc != BL_OK) {
        free(buf);
        return rc;
    }
    posted *p = &g.posts[g.n_posts];
    int err = MPI_Isend(buf, (int)len, MPI_BYTE, dest, tag, comm->comm, &p->req);
    if (err != MPI_SUCCESS) {
        free(buf);
        return mpi_fail(ctx, err, "MPI_Isend");
    }
    p->buf = buf;
    g.n_posts++;
    return BL_OK;
}

static int flush(bl_ctx *ctx)
{
    return reap(ctx, true);
}

static int receive(bl_ctx *ctx, bl_dist_comm *comm, int tag, bool wait, int *src, void **buf,
                   size_t *len)
{
    MPI_Status st;
    for (;;) {
        int flag = 0;
        int err = MPI_Iprobe(MPI_ANY_SOURCE, tag, comm->comm, &flag, &st);
        if (err != MPI_SUCCESS)
            return mpi_fail(ctx, err, "MPI_Iprobe");
        if (flag)
            break;
        if (!wait)
            return BL_OK;
        reap(ctx, false);
        nap();
    }
    int count = 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    char *b = malloc(count > 0 ? (size_t)count : 1);
    if (!b)
        return bl_error(ctx, BL_ENOMEM, "out of memory receiving %d bytes", count);
    int err = MPI_Recv(b, count, MPI_BYTE, st.MPI_SOURCE, tag, comm->comm, MPI_STATUS_IGNORE);
    if (err != MPI_SUCCESS) {
        free(b);
        return mpi_fail(ctx, err, "MPI_Recv");
    }
    *buf = b;
    *len = (size_t)count;
    *src = st.MPI_SOURCE;
    return BL_OK;
}

static int bcast(bl_ctx *ctx, bl_dist_comm *comm, int root, void **buf, size_t *len)
{
    uint64_t n = comm->rank == root ? (uint64_t)*len : 0;
    MPI_Request req;
    int err = MPI_Ibcast(&n, 1, MPI_UINT64_T, root, comm->comm, &req);
    if (err != MPI_SUCCESS)
        return mpi_fail(ctx, err, "MPI_Ibcast");
    int rc = wait_request(ctx, &req, "MPI_Ibcast");
    if (rc != BL_OK)
        return rc;
    if (n > (uint64_t)INT32_MAX)
        return bl_error(ctx, BL_EINVAL, "MPI: a broadcast of %llu bytes is too large",
                        (unsigned long long)n);
    char *b = *buf;
    if (comm->rank != root) {
        *buf = NULL;
        *len = 0;
        if (n == 0)
            return BL_OK;
        if (!(b = malloc((size_t)n)))
            return bl_error(ctx, BL_ENOMEM, "out of memory receiving %llu bytes",
                            (unsigned long long)n);
    }
    if (n > 0) {
        err = MPI_Ibcast(b, (int)n, MPI_BYTE, root, comm->comm, &req);
        rc = err == MPI_SUCCESS ? wait_request(ctx, &req, "MPI_Ibcast")
                                : mpi_fail(ctx, err, "MPI_Ibcast");
    }
    if (comm->rank != root) {
        if (rc != BL_OK) {
            free(b);
            return rc;
        }
        *buf = b;
        *len = (size_t)n;
    }
    return rc;
}

/* ---- the reducer --------------------------------------------------------------------------- */

/* The ranks of a data-parallel run are in step: they wait for each other only as long as the
 * slowest takes, and a large sum needs the CPU to move its data. So the reducer uses MPI's
 * blocking calls (a polling loop with sleeps made a 40 MB sum 100× slower). */

static int reduce(const bl_reducer *self, bl_ctx *ctx, void *buf, size_t n, MPI_Datatype type,
                  const char *what)
{
    const bl_dist_comm *comm = self->state;
    /* in pieces of at most 2^30 elements: MPI counts are ints */
    size_t step = (size_t)1 << 30;
    size_t width = type == MPI_FLOAT ? sizeof(float) : sizeof(double);
    for (size_t off = 0; off < n; off += step) {
        size_t k = n - off < step ? n - off : step;
        int err = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * width, (int)k, type, MPI_SUM,
                                comm->comm);
        if (err != MPI_SUCCESS)
            return mpi_fail(ctx, err, what);
    }
    return BL_OK;
}

static int sum_f32(const bl_reducer *self, bl_ctx *ctx, float *buf, size_t n)
{
    return reduce(self, ctx, buf, n, MPI_FLOAT, "MPI_Allreduce of the gradients");
}

static int sum_f64(const bl_reducer *self, bl_ctx *ctx, double *buf, size_t n)
{
    return reduce(self, ctx, buf, n, MPI_DOUBLE, "MPI_Allreduce");
}

static int broadcast(const bl_reducer *self, bl_ctx *ctx, void *buf, size_t bytes, int root)
{
    const bl_dist_comm *comm = self->state;
    size_t step = (size_t)1 << 30;
    for (size_t off = 0; off < bytes; off += step) {
        size_t k = bytes - off < step ? bytes - off : step;
        int err = MPI_Bcast((char *)buf + off, (int)k, MPI_BYTE, root, comm->comm);
        if (err != MPI_SUCCESS)
            return mpi_fail(ctx, err, "MPI_Bcast of the parameters");
    }
    return BL_OK;
}

static void reducer(bl_dist_comm *comm, bl_reducer *out)
{
    *out = (bl_reducer){.size = sizeof *out, .ranks = comm->size,
                        .rank = comm->rank, .sum_f32 = sum_f32, .sum_f64 = sum_f64,
                        .broadcast = broadcast, .state = comm};
}

static const bl__dist_backend mpi_world = {
    .name = "mpi", .finalize = finalize, .abort = abort_all, .world = world, .rank = rank,
    .size = size, .split = split, .comm_free = comm_free, .counter_new = counter_new,
    .counter_add = counter_add, .counter_free = counter_free, .post = post, .flush = flush,
    .receive = receive, .bcast = bcast, .reducer = reducer,
};
