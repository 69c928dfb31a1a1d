/* Steps and time to a target, interpolated between evaluation points (batchlab/train.h). */
#include <math.h>

#include "batchlab/train.h"

static bool at_target(double v, double target, bool higher_better)
{
    return higher_better ? v >= target : v <= target;   /* NaN: false */
}

static double lerp(double a, double b, double f)
{
    return a + f * (b - a);
}

bool bl_target_crossing_find(const bl_eval_point *points, size_t count, bl_metric metric,
                             double target, bool higher_better, bl_target_crossing *out)
{
    for (size_t i = 0; i < count; i++) {
        const bl_eval_point *at = &points[i];
        if (!at_target(bl_eval_point_metric(at, metric), target, higher_better))
            continue;
        const bl_eval_point *before = i > 0 ? &points[i - 1] : NULL;
        double v0 = before ? bl_eval_point_metric(before, metric) : NAN;
        double v1 = bl_eval_point_metric(at, metric);
        /* v0 is short of the target and v1 at or past it, so f is in (0, 1] whenever v0 is a
         * number; the clamp only guards rounding */
        double f = isfinite(v0) && v1 != v0 ? (target - v0) / (v1 - v0) : 1.0;
        if (!(f >= 0))
            f = 0;
        if (f > 1)
            f = 1;
        if (before && isfinite(v0)) {
            out->steps = llround(lerp((double)before->step, (double)at->step, f));
            out->samples = llround(lerp((double)before->samples, (double)at->samples, f));
            out->epochs = lerp(before->epoch, at->epoch, f);
            out->wall = lerp(before->wall, at->wall, f);
        } else {
            out->steps = at->step;
            out->samples = at->samples;
            out->epochs = at->epoch;
            out->wall = at->wall;
        }
        out->steps_error = at->step - (before ? before->step : 0);
        return true;
    }
    return false;
}
