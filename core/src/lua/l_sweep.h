/* What l_sweep.c (bl.sweep) and l_tune.c (its seeds, LR tuning and bl.fit_lr) share: the
 * stack slots of a bl.sweep call and the call's state. Internal to the Lua module. */
#ifndef BATCHLAB_LUA_L_SWEEP_H
#define BATCHLAB_LUA_L_SWEEP_H

#include <stdbool.h>

#include "batchlab/sweep.h"
#include "batchlab/tune.h"
#include "lua/lbl.h"

/* Stack slots of bl__lua_sweep, the same in point_main (they are passed on as its arguments). */
enum { S_ARGS = 1, S_NAME, S_BASE, S_VARY, S_TARGET, S_SCORE, S_HIGHER, S_QUIET, S_ON_RUN,
       S_SEEDS, S_FACTORS, S_CALL, S_RUNS, S_ERR, S_NSLOTS = S_ERR };

#define LBL_SWEEP_CALL "batchlab.SweepCall"

/* tune.lr's settings (check_tune). */
typedef struct sweep_tune_args {
    double eta;               /* 0: the tuner's default */
    lua_Integer rungs;        /* 0: the tuner's default */
    bool range_test;          /* an LR range test per point centres its candidates */
    lua_Integer range_steps;  /* its length in steps */
    double range_from, range_to;   /* its LR, as multiples of the point's (scaled) LR */
} sweep_tune_args;

typedef struct sweep_call {
    lua_State *L;
    const char *name;
    const char **keys;        /* vary's keys as found (anchored in the vary table) */
    size_t *at;               /* scratch: the value indices of one point, sorted key order */
    bl_grid grid;
    bl_sweep_summary sum;
    bl_tune_summary tuned;    /* a tuned sweep's */
    sweep_tune_args tune;
    bool interrupted;
    bool quiet;
    size_t started;           /* runs started so far (progress lines: "run 7/21") */
} sweep_call;

/* l_sweep.c */
bl_optim_config bl__sweep_cfg_optim(lua_State *L, int ci);
void bl__sweep_set_lr(lua_State *L, int ci);

/* l_tune.c */
void bl__sweep_check_seeds(lua_State *L);
void bl__sweep_check_tune(lua_State *L, sweep_tune_args *out);
void bl__sweep_tune_config(lua_State *L, const sweep_call *c, const bl_tune_entry *tr, int ci,
                           int pi, int li);
int bl__sweep_range_centre(lua_State *L, size_t index, double *centre);
void bl__sweep_tuned_result(lua_State *L, sweep_call *c, bool quiet);

#endif
