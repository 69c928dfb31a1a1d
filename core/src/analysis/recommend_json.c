/* The recommendation as JSON (batchlab/recommend.h: bl_recommendation_json), the form the
 * results store keeps with the experiment. */
#include "batchlab/recommend.h"
#include "base/strbuf.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* "key": number (NaN: null; ±infinity: the strings "inf" / "-inf", which JSON lacks). */
static void num(bl__sbuf *b, const char *key, double v, bool comma)
{
    char buf[40];
    bl__sb_printf(b, "%s\"%s\":", comma ? "," : "", key);
    if (isnan(v)) {
        bl__sb_puts(b, "null");
    } else if (isinf(v)) {
        bl__sb_puts(b, v > 0 ? "\"inf\"" : "\"-inf\"");
    } else {
        bl__format_double(buf, sizeof buf, v, 1);
        bl__sb_puts(b, buf);
    }
}

static void str(bl__sbuf *b, const char *key, const char *s, bool comma)
{
    bl__sb_printf(b, "%s\"%s\":", comma ? "," : "", key);
    if (s)
        bl__sb_json_string(b, s);
    else
        bl__sb_puts(b, "null");
}

static void flag(bl__sbuf *b, const char *key, bool v)
{
    bl__sb_printf(b, ",\"%s\":%s", key, v ? "true" : "false");
}

static void label(bl__sbuf *b, const bl_rec_batch *g)
{
    char buf[48];
    if (isfinite(g->batch)) {
        snprintf(buf, sizeof buf, "batch %.15g", g->batch);
        bl__sb_json_string(b, buf);
    } else {
        bl__sbuf t = {0};
        bl__sb_printf(&t, "schedule %s", g->schedule);
        bl__sb_json_string(b, t.failed ? "" : t.p);
        b->failed |= t.failed;
        free(t.p);
    }
}

static void labels(bl__sbuf *b, const char *key, const bl_recommendation *rec, int which)
{
    bool first = true;
    bl__sb_printf(b, ",\"%s\":[", key);
    for (size_t k = 0; k < rec->batch_count; k++) {
        const bl_rec_batch *g = &rec->by_batch[k];
        if (which == 0 ? !g->tied : !g->pareto)
            continue;
        bl__sb_puts(b, first ? "" : ",");
        label(b, g);
        first = false;
    }
    bl__sb_puts(b, "]");
}

int bl_recommendation_json(const bl_recommendation *rec, char **out)
{
    if (!rec || !out || !rec->by_batch)
        return BL_EINVAL;
    bl__sbuf b = {0};
    const bl_rec_batch *p = &rec->by_batch[rec->pick];
    bl__sb_puts(&b, "{\"pick\":");
    label(&b, p);
    num(&b, "batch", p->batch, true);
    str(&b, "schedule", p->schedule, true);
    str(&b, "basis", rec->basis == BL_REC_BY_TARGET ? "time_to_target"
                     : rec->basis == BL_REC_BY_METRIC ? "metric" : "fallback", true);
    str(&b, "regime", bl_regime_name(rec->regime), true);
    str(&b, "sentence", rec->sentence, true);
    str(&b, "reason", rec->reason, true);
    num(&b, "tie_margin", rec->tie_margin, true);
    labels(&b, "tied", rec, 0);
    labels(&b, "pareto", rec, 1);
    bl__sb_puts(&b, ",\"candidates\":[");
    for (size_t k = 0; k < rec->batch_count; k++) {
        const bl_rec_batch *g = &rec->by_batch[k];
        bl__sb_puts(&b, k ? ",{\"label\":" : "{\"label\":");
        label(&b, g);
        num(&b, "batch", g->batch, true);
        str(&b, "schedule", g->schedule, true);
        num(&b, "runs", g->runs, true);
        num(&b, "reached", g->reached, true);
        num(&b, "trials", g->trials, true);
        num(&b, "time_to_target", g->time_to_target, true);
        num(&b, "time_lo", g->time_lo, true);
        num(&b, "time_hi", g->time_hi, true);
        num(&b, "steps_to_target", g->steps_to_target, true);
        num(&b, "steps_error", g->steps_error, true);
        num(&b, "val_accuracy", g->val_accuracy, true);
        num(&b, "gap", g->gap, true);
        num(&b, "lr", g->lr, true);
        num(&b, "gns", g->gns, true);
        num(&b, "overhead", g->overhead, true);
        str(&b, "regime", bl_regime_name(g->regime), true);
        flag(&b, "tied", g->tied);
        flag(&b, "pareto", g->pareto);
        bl__sb_puts(&b, "}");
    }
    const bl_cbs *c = &rec->cbs;
    bl__sb_puts(&b, "],\"cbs\":{");
    num(&b, "b_crit", c->has_fit && c->fit.valid ? c->fit.b_crit : NAN, false);
    num(&b, "b_crit_lo", c->b_crit_lo, true);
    num(&b, "b_crit_hi", c->b_crit_hi, true);
    num(&b, "r2", c->has_fit ? c->fit.r2 : NAN, true);
    num(&b, "n", c->has_fit ? (double)c->fit.n : NAN, true);
    flag(&b, "fit_trusted", c->fit_trusted);
    flag(&b, "few_points", c->few_points);
    num(&b, "resolution", c->resolution, true);
    num(&b, "b_ref", c->b_ref, true);
    num(&b, "b20", c->b20, true);
    num(&b, "b20_lo", c->b20_lo, true);
    num(&b, "b20_hi", c->b20_hi, true);
    num(&b, "gns", c->gns_runs ? c->gns : NAN, true);
    num(&b, "gns_lo", c->gns_lo, true);
    num(&b, "gns_hi", c->gns_hi, true);
    num(&b, "gns_runs", (double)c->gns_runs, true);
    num(&b, "branched", c->has_branched ? c->branched : NAN, true);
    num(&b, "branched_lo", c->has_branched ? c->branched_lo : NAN, true);
    num(&b, "branched_hi", c->has_branched ? c->branched_hi : NAN, true);
    bl__sb_puts(&b, "}}");
    if (b.failed) {
        free(b.p);
        return BL_ENOMEM;
    }
    *out = b.p;
    return BL_OK;
}
