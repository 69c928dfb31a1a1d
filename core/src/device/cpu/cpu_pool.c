#define _GNU_SOURCE /* sched_yield, clock_gettime */
#include "device/cpu/cpu_pool.h"
#include "base/clock.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

/* An idle worker first polls without giving its CPU away (a training step issues kernels
 * every few microseconds, and a worker that is switched out reacts late), then polls while
 * yielding now and then (so that OpenBLAS's threads and other programs run), then sleeps: a
 * pool left alone costs nothing after SPIN_NS. The yields are YIELD_EVERY polls apart (a few
 * microseconds): a sched_yield is a system call, and in a virtual machine one every few
 * hundred nanoseconds made the idle worker ~20% of a training run's CPU samples (issue 13). */
#define HOT_SPIN_NS 50000LL
#define SPIN_NS 2000000LL
#define YIELD_EVERY 128 /* polls; a power of 2 */

/* The claim word packs the job generation (high 32 bits) and the range of chunks nobody has
 * taken yet, [front, back) (16 bits each), so one compare-and-swap both checks that a chunk
 * belongs to the current job and takes it. Workers take chunks from the front and the caller
 * from the back: the caller then always works on the end of each range, in every kernel, so
 * the data it touches alone between parallel kernels (the last layers' parameters, at the end
 * of the block) stay in its own cache. */
#define CLAIM(gen, front, back) (((uint64_t)(gen) << 32) | ((uint64_t)(front) << 16) | (back))
#define CLAIM_GEN(c) ((uint32_t)((c) >> 32))
#define CLAIM_FRONT(c) ((uint32_t)(((c) >> 16) & 0xffffu))
#define CLAIM_BACK(c) ((uint32_t)((c)&0xffffu))

struct bl__pool {
    int threads;
    pthread_t *workers; /* [threads − 1] */
    int started;        /* workers actually created */

    /* The current job; written by the driver before it publishes `gen`, constant until every
     * chunk of that job is done. */
    bl__pool_fn fn;
    void *arg;
    int64_t n, chunk;

    _Atomic uint64_t claim;
    _Atomic uint32_t gen;
    _Atomic int done;
    _Atomic int sleepers;
    _Atomic bool stop;

    pthread_mutex_t lock;
    pthread_cond_t wake;

    /* The background work (cpu_pool.h): the fields are written by the driver while it holds
     * bg_busy, before it sets bg_on, and read by whoever holds bg_busy and sees bg_on. */
    bl__pool_bg_fn bg_fn;
    void *bg_arg;
    int64_t bg_n, bg_grain, bg_next;
    _Atomic bool bg_on;   /* pieces are left */
    _Atomic bool bg_busy; /* a thread is running a piece (or publishing) */
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* The driver waiting at the end of a job runs a third of a piece: the thread it waits for may
 * finish any moment, and a whole piece (~3 µs of the loader's gather) held up the next kernel
 * (bench_engine, MLP, 2 threads: batch 32 117-119k -> 121-125k samples/s, 512 218-225k ->
 * 225-238k, 2048 and LeNet unchanged). Idle workers run whole pieces. */
#define JOIN_PIECE_DIV 3

/* Runs the next background piece, or its first 1/div, if there is one and no thread is running
 * one; false when there was nothing this thread could do. */
static bool background_piece(bl__pool *pool, int64_t div)
{
    if (!atomic_load_explicit(&pool->bg_on, memory_order_relaxed) ||
        atomic_exchange_explicit(&pool->bg_busy, true, memory_order_acquire))
        return false;
    bool ran = false;
    if (atomic_load_explicit(&pool->bg_on, memory_order_relaxed)) {
        int64_t begin = pool->bg_next;
        int64_t grain = pool->bg_grain / div > 0 ? pool->bg_grain / div : 1;
        int64_t end = pool->bg_n - begin > grain ? begin + grain : pool->bg_n;
        pool->bg_fn(pool->bg_arg, begin, end);
        pool->bg_next = end;
        if (end >= pool->bg_n) /* release: a waiter that sees it also sees bg_busy held */
            atomic_store_explicit(&pool->bg_on, false, memory_order_release);
        ran = true;
    }
    atomic_store_explicit(&pool->bg_busy, false, memory_order_release);
    return ran;
}

/* Claims and runs chunks of job `gen` until none is left, from the front or from the back. */
static void run_chunks(bl__pool *pool, uint32_t gen, bool from_back)
{
    uint64_t cur = atomic_load_explicit(&pool->claim, memory_order_acquire);
    for (;;) {
        uint32_t front = CLAIM_FRONT(cur), back = CLAIM_BACK(cur);
        if (CLAIM_GEN(cur) != gen || front >= back)
            return;
        uint32_t mine = from_back ? back - 1 : front;
        uint64_t want = from_back ? CLAIM(gen, front, back - 1) : CLAIM(gen, front + 1, back);
        if (!atomic_compare_exchange_weak_explicit(&pool->claim, &cur, want,
                                                   memory_order_acq_rel, memory_order_acquire))
            continue;
        int64_t begin = (int64_t)mine * pool->chunk;
        int64_t end = begin + pool->chunk < pool->n ? begin + pool->chunk : pool->n;
        pool->fn(pool->arg, (int)mine, begin, end);
        atomic_fetch_add_explicit(&pool->done, 1, memory_order_release);
        cur = atomic_load_explicit(&pool->claim, memory_order_acquire);
    }
}

static void *worker_main(void *p)
{
    bl__pool *pool = p;
    uint32_t seen = atomic_load_explicit(&pool->gen, memory_order_acquire);
    for (;;) {
        uint32_t gen = atomic_load_explicit(&pool->gen, memory_order_acquire);
        if (gen == seen) {
            int64_t start = bl__now_ns(), hot_until = start + HOT_SPIN_NS, until = start + SPIN_NS;
            bool hot = true;
            for (unsigned i = 1;; i++) {
                gen = atomic_load_explicit(&pool->gen, memory_order_acquire);
                if (gen != seen || atomic_load_explicit(&pool->stop, memory_order_relaxed))
                    break;
                if (background_piece(pool, 1))
                    continue; /* between pieces, a new job comes first */
                cpu_relax();
                if ((i & 15) == 0) {
                    if (!hot && (i & (YIELD_EVERY - 1)) == 0)
                        sched_yield();
                    if ((i & (hot ? 63 : 255)) == 0) {
                        int64_t t = bl__now_ns();
                        hot = t < hot_until;
                        if (t > until)
                            break;
                    }
                }
            }
            if (gen == seen && !atomic_load(&pool->stop)) {
                pthread_mutex_lock(&pool->lock);
                atomic_fetch_add(&pool->sleepers, 1);
                while ((gen = atomic_load(&pool->gen)) == seen && !atomic_load(&pool->stop))
                    pthread_cond_wait(&pool->wake, &pool->lock);
                atomic_fetch_sub(&pool->sleepers, 1);
                pthread_mutex_unlock(&pool->lock);
            }
        }
        if (atomic_load(&pool->stop))
            return NULL;
        seen = gen;
        run_chunks(pool, gen, false);
    }
}

bl__pool *bl__pool_new(int threads)
{
    if (threads < 2)
        return NULL;
    if (threads > BL__POOL_MAX_THREADS)
        threads = BL__POOL_MAX_THREADS;
    bl__pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    pool->threads = threads;
    pool->workers = calloc((size_t)threads - 1, sizeof *pool->workers);
    if (!pool->workers || pthread_mutex_init(&pool->lock, NULL) != 0) {
        free(pool->workers);
        free(pool);
        return NULL;
    }
    if (pthread_cond_init(&pool->wake, NULL) != 0) {
        pthread_mutex_destroy(&pool->lock);
        free(pool->workers);
        free(pool);
        return NULL;
    }
    atomic_init(&pool->claim, CLAIM(0, 0, 0));
    atomic_init(&pool->gen, 0);
    atomic_init(&pool->done, 0);
    atomic_init(&pool->sleepers, 0);
    atomic_init(&pool->stop, false);
    atomic_init(&pool->bg_on, false);
    atomic_init(&pool->bg_busy, false);
    for (int i = 0; i < threads - 1; i++) {
        if (pthread_create(&pool->workers[i], NULL, worker_main, pool) != 0)
            break;
        pool->started++;
    }
    if (pool->started != threads - 1) {
        bl__pool_free(pool);
        return NULL;
    }
    return pool;
}

void bl__pool_free(bl__pool *pool)
{
    if (!pool)
        return;
    atomic_store(&pool->stop, true);
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add(&pool->gen, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->started; i++)
        pthread_join(pool->workers[i], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool->workers);
    free(pool);
}

int bl__pool_threads(const bl__pool *pool)
{
    return pool ? pool->threads : 1;
}

int bl__pool_run(bl__pool *pool, int64_t n, int64_t grain, int64_t align, bl__pool_fn fn,
                 void *arg)
{
    if (n <= 0)
        return 0;
    if (align < 1)
        align = 1;
    if (grain < align)
        grain = align;
    int64_t chunks = pool ? n / grain : 1;
    if (pool && chunks > pool->threads)
        chunks = pool->threads;
    if (chunks <= 1) {
        fn(arg, 0, 0, n);
        return 1;
    }
    int64_t chunk = (n + chunks - 1) / chunks;
    chunk = (chunk + align - 1) / align * align;
    chunks = (n + chunk - 1) / chunk;
    if (chunks <= 1) {
        fn(arg, 0, 0, n);
        return 1;
    }

    pool->fn = fn;
    pool->arg = arg;
    pool->n = n;
    pool->chunk = chunk;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    uint32_t gen = atomic_load_explicit(&pool->gen, memory_order_relaxed) + 1;
    atomic_store_explicit(&pool->claim, CLAIM(gen, 0, (uint64_t)chunks), memory_order_release);
    atomic_store(&pool->gen, gen); /* seq_cst: pairs with the sleepers check below */
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
    }
    run_chunks(pool, gen, true);
    for (unsigned i = 1; atomic_load_explicit(&pool->done, memory_order_acquire) < chunks; i++) {
        if (background_piece(pool, JOIN_PIECE_DIV))
            continue;
        cpu_relax();
        if ((i & 63) == 0)
            sched_yield();
    }
    return (int)chunks;
}

void bl__pool_background(bl__pool *pool, bl__pool_bg_fn fn, void *arg, int64_t n,
                         int64_t grain)
{
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    if (!pool) {
        for (int64_t b = 0; b < n; b += grain)
            fn(arg, b, n - b > grain ? b + grain : n);
        return;
    }
    bl__pool_background_wait(pool); /* one at a time */
    while (atomic_exchange_explicit(&pool->bg_busy, true, memory_order_acquire))
        cpu_relax();
    pool->bg_fn = fn;
    pool->bg_arg = arg;
    pool->bg_n = n;
    pool->bg_grain = grain;
    pool->bg_next = 0;
    atomic_store_explicit(&pool->bg_on, true, memory_order_relaxed);
    atomic_store_explicit(&pool->bg_busy, false, memory_order_release);
}

void bl__pool_background_wait(bl__pool *pool)
{
    if (!pool)
        return;
    for (;;) {
        if (background_piece(pool, 1))
            continue;
        /* done once nothing is left and nobody is inside a piece */
        if (!atomic_load_explicit(&pool->bg_on, memory_order_acquire) &&
            !atomic_load_explicit(&pool->bg_busy, memory_order_acquire))
            return;
        cpu_relax();
    }
}
