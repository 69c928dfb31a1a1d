/* Step times and their median: the robust per-step time of a run (engine.h, train.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

int bl__step_times_reserve(bl_ctx *ctx, bl__step_times *s, size_t cap)
{
    memset(s, 0, sizeof *s);
    s->t = malloc(cap * sizeof *s->t);
    s->batch = malloc(cap * sizeof *s->batch);
    s->scratch = malloc(cap * sizeof *s->scratch);
    if (!s->t || !s->batch || !s->scratch) {
        bl__step_times_release(s);
        return bl_error(ctx, BL_ENOMEM, "train: out of memory for the step times");
    }
    s->cap = cap;
    return BL_OK;
}

void bl__step_times_release(bl__step_times *s)
{
    free(s->t);
    free(s->batch);
    free(s->scratch);
    memset(s, 0, sizeof *s);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bl__median(const double *times, size_t n, double *scratch)
{
    if (n == 0)
        return NAN;
    if (scratch != times)
        memcpy(scratch, times, n * sizeof *scratch);
    qsort(scratch, n, sizeof *scratch, cmp_double);
    return n % 2 ? scratch[n / 2] : (scratch[n / 2 - 1] + scratch[n / 2]) / 2;
}

double bl__step_times_median(bl__step_times *s, int64_t batch)
{
    size_t m = 0;
    for (size_t i = 0; i < s->n; i++)
        if (batch <= 0 || s->batch[i] == batch)
            s->scratch[m++] = s->t[i];
    return bl__median(s->scratch, m, s->scratch);
}
