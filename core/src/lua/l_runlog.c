/* Runs that ended: failed and diverged runs announced as they end and kept for the summary a
 * host prints at the end of a script (batchlab run), and the position of the sweep in progress
 * for progress lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "lua/lbl.h"

enum { KEPT_FAILURES = 1000 };

void bl__lua_run_ended(lua_State *L, const char *label, bl_run_status status,
                       const char *reason)
{
    lbl_state *st = bl__lua_state(L);
    st->runs_ended++;
    if (status != BL_RUN_FAILED && status != BL_RUN_DIVERGED)
        return;
    if (status == BL_RUN_FAILED)
        st->runs_failed++;
    else
        st->runs_diverged++;
    const char *name = label && *label ? label : "(unlabelled)";
    const char *why = reason && *reason ? reason : "no reason given";
    /* errors, not warnings: said even when runs are quiet */
    fprintf(stderr, "batchlab: run '%s' %s: %s\n", name, bl_run_status_name(status), why);
    fflush(stderr);
    if (st->n_failures >= KEPT_FAILURES)
        return;
    if (st->n_failures == st->cap_failures) {
        size_t cap = st->cap_failures ? 2 * st->cap_failures : 8;
        char **f = realloc(st->failures, cap * sizeof *f);
        if (!f)
            return;                       /* the announcement was made; the summary counts */
        st->failures = f;
        st->cap_failures = cap;
    }
    size_t len = strlen(name) + strlen(why) + 32;
    char *line = malloc(len);
    if (!line)
        return;
    snprintf(line, len, "%s: %s: %s", name, bl_run_status_name(status), why);
    st->failures[st->n_failures++] = line;
}

void bl__lua_runlog_free(lbl_state *st)
{
    for (size_t i = 0; i < st->n_failures; i++)
        free(st->failures[i]);
    free(st->failures);
    st->failures = NULL;
    st->n_failures = st->cap_failures = 0;
}

void bl__lua_sweep_position(lua_State *L, int index, int count)
{
    lbl_state *st = bl__lua_state(L);
    if (index == 1 || (index > 0 && st->sweep_count == 0))
        st->sweep_start = bl__now();
    st->sweep_index = index;
    st->sweep_count = count;
}

size_t bl_lua_run_failures(lua_State *L, size_t index, const char **line, size_t *diverged,
                           size_t *ended)
{
    lbl_state *st = bl__lua_state(L);
    if (line)
        *line = index < st->n_failures ? st->failures[index] : NULL;
    if (diverged)
        *diverged = st->runs_diverged;
    if (ended)
        *ended = st->runs_ended;
    return st->runs_failed;
}
