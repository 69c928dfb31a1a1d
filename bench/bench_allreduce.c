/* bench_allreduce: the cost of one in-place gradient sum (bl_reducer.sum_f32, MPI_Allreduce
 * over the job) by buffer size, for the scaling model of docs/distributed.md. Run it under
 * mpirun; on one rank it only says so.
 *   mpirun -np 2 bench/bench_allreduce [REPEATS]
 * prints per size: floats, bytes, median µs per sum, and the bandwidth it implies. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "batchlab/dist.h"
#include "bench_args.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char usage[] =
    "usage: bench_allreduce [REPEATS]\n"
    "Times the in-place gradient sum of data-parallel runs (MPI_Allreduce through batchlab's\n"
    "reducer) for buffers of 1e3 to 1e7 floats; REPEATS per size (default 50), median shown.\n"
    "Run it under MPI: mpirun -np N --oversubscribe bench/bench_allreduce\n";

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (bench_help(argc, argv, usage))
        return 0;
    if (bench_refuse_options("bench_allreduce", argc, argv))
        return 2;
    long repeats = 50;
    if (argc > 2 || (argc == 2 && !bench_long("bench_allreduce", "REPEATS", argv[1], 1, &repeats)))
        return 2;
    bl_ctx *ctx = bl_ctx_new();
    if (!ctx || bl_dist_init(ctx) != BL_OK) {
        fprintf(stderr, "bench_allreduce: %s\n", ctx ? bl_errmsg(ctx) : "out of memory");
        return 1;
    }
    bl_reducer red;
    if (!bl_dist_world_reducer(&red)) {
        printf("bench_allreduce: one rank (%s): run it under mpirun -np 2 or more\n",
               bl_dist_built() ? "MPI not started" : "batchlab built without MPI");
        bl_dist_finalize();
        bl_ctx_free(ctx);
        return 0;
    }
    static const size_t sizes[] = {1000, 10000, 100000, 1000000, 10000000};
    double *t = malloc((size_t)repeats * sizeof *t);
    float *buf = malloc(sizes[4] * sizeof *buf);
    int status = 0;
    if (red.rank == 0)
        printf("ranks %d\n%10s %12s %12s %10s\n", red.ranks, "floats", "bytes", "median_us",
               "GB/s");
    for (size_t s = 0; t && buf && s < sizeof sizes / sizeof sizes[0]; s++) {
        for (size_t i = 0; i < sizes[s]; i++)
            buf[i] = 1.0f;
        for (long r = 0; r < repeats; r++) {
            double t0 = now();
            if (red.sum_f32(&red, ctx, buf, sizes[s]) != BL_OK) {
                fprintf(stderr, "bench_allreduce: %s\n", bl_errmsg(ctx));
                status = 1;
                break;
            }
            t[r] = now() - t0;
        }
        if (status)
            break;
        qsort(t, (size_t)repeats, sizeof *t, cmp);
        double med = t[repeats / 2];
        if (red.rank == 0)
            printf("%10zu %12zu %12.1f %10.2f\n", sizes[s], sizes[s] * sizeof(float), med * 1e6,
                   (double)(sizes[s] * sizeof(float)) / med / 1e9);
    }
    free(t);
    free(buf);
    bl_dist_finalize();
    bl_ctx_free(ctx);
    return status;
}
