/* weights_diff A B: the largest difference between the parameters of two snapshot or save
 * files (batchlab/snapshot.h), absolute and relative to the largest |parameter|, on one line:
 *   params N max_abs X max_rel Y
 * Exit 0, or 1 with a message when a file cannot be read or the nets differ in size. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "batchlab/snapshot.h"

static float *load(bl_ctx *ctx, const char *path, int64_t *n)
{
    bl_snapshot *s = NULL;
    bl_snapshot_info info;
    float *p = NULL;
    if (bl_snapshot_read(ctx, path, &s) == BL_OK && bl_snapshot_get_info(ctx, s, &info) == BL_OK &&
        (p = malloc((size_t)(info.n_params > 0 ? info.n_params : 1) * sizeof *p)) &&
        bl_snapshot_params(ctx, s, p, (size_t)info.n_params) == BL_OK) {
        *n = info.n_params;
        bl_snapshot_free(s);
        return p;
    }
    fprintf(stderr, "weights_diff: %s: %s\n", path, bl_errmsg(ctx));
    free(p);
    bl_snapshot_free(s);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: weights_diff A B\n");
        return 2;
    }
    bl_ctx *ctx = bl_ctx_new();
    int64_t na = 0, nb = 0;
    float *a = load(ctx, argv[1], &na), *b = a ? load(ctx, argv[2], &nb) : NULL;
    int status = 1;
    if (a && b && na != nb) {
        fprintf(stderr, "weights_diff: %lld and %lld parameters\n", (long long)na, (long long)nb);
    } else if (a && b) {
        double max_abs = 0, scale = 0;
        for (int64_t i = 0; i < na; i++) {
            double d = fabs((double)a[i] - (double)b[i]);
            max_abs = d > max_abs || isnan(d) ? d : max_abs;
            scale = fabs((double)a[i]) > scale ? fabs((double)a[i]) : scale;
        }
        printf("params %lld max_abs %.3g max_rel %.3g\n", (long long)na, max_abs,
               scale > 0 ? max_abs / scale : max_abs);
        status = 0;
    }
    free(a);
    free(b);
    bl_ctx_free(ctx);
    return status;
}
