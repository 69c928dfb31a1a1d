/* Names of run statuses and metrics, and reading a metric off an evaluation point. */
#include <math.h>
#include <string.h>

#include "batchlab/config.h"
#include "batchlab/train.h"

static const char *const metric_names[] = {"val_accuracy", "val_loss", "train_loss",
                                           "train_accuracy"};
#define METRIC_COUNT (sizeof metric_names / sizeof metric_names[0])

const char *bl_metric_name(bl_metric metric)
{
    return (unsigned)metric < METRIC_COUNT ? metric_names[metric] : "unknown";
}

bool bl_metric_name_higher_is_better(const char *name)
{
    return name && strstr(name, "accuracy") != NULL;
}

int bl_metric_parse(bl_ctx *ctx, const char *name, bl_metric *out)
{
    for (size_t i = 0; name && i < METRIC_COUNT; i++) {
        if (strcmp(name, metric_names[i]) == 0) {
            *out = (bl_metric)i;
            return BL_OK;
        }
    }
    const char *near = name ? bl_nearest_name(name, metric_names, METRIC_COUNT) : NULL;
    return bl_error(ctx, BL_EOPTION,
                    "unknown metric '%s'%s%s%s; accepted: val_accuracy, val_loss, train_loss, "
                    "train_accuracy",
                    name ? name : "(null)", near ? "; did you mean '" : "", near ? near : "",
                    near ? "'?" : "");
}

double bl_eval_point_metric(const bl_eval_point *p, bl_metric metric)
{
    switch (metric) {
    case BL_METRIC_VAL_ACCURACY: return p->val_accuracy;
    case BL_METRIC_VAL_LOSS: return p->val_loss;
    case BL_METRIC_TRAIN_LOSS: return p->train_loss;
    case BL_METRIC_TRAIN_ACCURACY: return p->train_accuracy;
    }
    return NAN;
}
