/* The progress line: live (rewritten with \r) on a terminal, periodic plain lines otherwise. */
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "batchlab/train.h"
#include "base/clock.h"

void bl_progress_print(void *user, const bl_train_state *s, double loss, int64_t total_samples)
{
    bl_progress_printer *p = user;
    double now = bl__now();
    if (p->start == 0)
        p->start = now;
    double interval = p->live ? 0.2 : (p->interval > 0 ? p->interval : 5.0);
    bool done = total_samples > 0 && s->samples >= total_samples;
    if (now - p->last_print < interval && !done)
        return;
    p->last_print = now;

    double rate = s->wall > 0 ? (double)s->samples / s->wall : 0;
    char eta[32] = "";
    if (total_samples > 0 && rate > 0) {
        double left = (double)(total_samples - s->samples) / rate;
        snprintf(eta, sizeof eta, " eta %.0fs", left > 0 ? left : 0);
    }
    char acc[32] = "";
    if (s->last && !isnan(s->last->val_accuracy))
        snprintf(acc, sizeof acc, " val_acc %.4f", s->last->val_accuracy);
    fprintf(stderr, "%s%s%sepoch %.2f step %lld batch %lld loss %.4f%s %.0f samples/s%s%s",
            p->live ? "\r\033[K" : "", p->label ? p->label : "", p->label ? " " : "",
            s->epoch_progress, (long long)s->step, (long long)s->batch, loss, acc, rate, eta,
            p->live && !done ? "" : "\n");
    fflush(stderr);
}
