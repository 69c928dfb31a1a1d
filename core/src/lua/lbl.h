/* The `batchlab` Lua module: what its files share, and the few calls a host makes.
 *
 * Bindings only: every binding converts Lua values to the core's C types, calls the core and
 * converts back. One file per type (l_dataset.c, l_model.c, ...), one metatable per type named
 * "batchlab.<Type>", userdata created closed first and then filled, `__gc` and `__close`
 * sharing one idempotent function. Misuse raises (luaL_argerror / luaL_error with the core's
 * message); errors inside user callbacks during a run end that run, not the script.
 *
 * The module keeps one state per lua_State (a userdata in the Lua registry): the plugin
 * registry (scanned once, on first use), an error context, and what the host set with the
 * bl_lua_set_* calls of batchlab/lua.h (interrupt flag, quiet, threads).
 */
#ifndef BATCHLAB_LUA_LBL_H
#define BATCHLAB_LUA_LBL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>

#include "batchlab/lua.h" /* the host interface: luaopen_batchlab, bl_lua_set_* */

#include "batchlab/config.h"
#include "batchlab/dataset.h"
#include "batchlab/error.h"
#include "batchlab/optim.h"
#include "batchlab/plugin.h"
#include "batchlab/run.h"
#include "batchlab/tfevents.h"
#include "batchlab/train.h"

/* ---- shared inside the module -------------------------------------------------------------- */

/* The points of run.history a Lua run table keeps in memory (issue 15: 200,000 points took
 * 90 MB of Lua heap). During a run the table grows to twice this and then drops its earliest
 * half; the table bl.train returns holds the last BL_LUA_HISTORY_WINDOW points, and
 * run.history_dropped counts the earlier ones (every point is in the results store). */
#define BL_LUA_HISTORY_WINDOW 10000

#define LBL_DATASET "batchlab.Dataset"
#define LBL_MODEL "batchlab.Model"
#define LBL_SCHEDULER "batchlab.Scheduler"
#define LBL_OPTIM "batchlab.Optim"

typedef struct lbl_state {
    bl_ctx *ctx;                       /* errors of module-level calls */
    bl_registry *reg;                  /* NULL until first use */
    volatile sig_atomic_t *interrupt;  /* host's flag, or NULL */
    volatile sig_atomic_t *supervising; /* host's flag (bl_lua_set_supervising), or NULL */
    bool interrupted;                  /* the last run was interrupted */
    /* Isolated sweeps (l_sweep.c, l_isolate.c): in the child process that trains a point, the
     * pipe to the parent (-1 elsewhere), where the run's store and configuration are sent
     * before it trains; and the crashes or time-outs a configuration may have before resume
     * skips it (bl.sweep's `retries`, 0 outside a sweep). */
    int isolate_fd;
    int retries;
    bool quiet;
    int threads;
    char *tensorboard;                 /* default log directory, or NULL (owned) */
    /* runs that failed or diverged (l_runlog.c): announced as they end, kept for the host's
     * summary (bl_lua_run_failures) */
    size_t runs_ended, runs_failed, runs_diverged;
    char **failures;                   /* [n_failures] "label: status: reason" (owned) */
    size_t n_failures, cap_failures;
    /* the sweep in progress (l_sweep.c): run index (1-based) of count, 0 = none */
    int sweep_index, sweep_count;
    double sweep_start;                /* bl__now() when the sweep began */
} lbl_state;

/* ---- runs that ended (l_runlog.c) ---------------------------------------------------------- */

/* A run ended: a failed or diverged one is announced on stderr at once ("batchlab: run
 * 'label' failed: reason") and kept for the summary. `label` may be NULL. Never raises. */
void bl__lua_run_ended(lua_State *L, const char *label, bl_run_status status,
                       const char *reason);
/* Frees what the state keeps of ended runs (its __gc). */
void bl__lua_runlog_free(lbl_state *st);
/* The sweep position for the progress line of the next runs: run `index` of `count` (0, 0
 * when the sweep is over). */
void bl__lua_sweep_position(lua_State *L, int index, int count);

/* The module state of L (created on first use; never NULL: raises on out-of-memory). */
lbl_state *bl__lua_state(lua_State *L);
/* The registry, scanned on first use; raises on failure. */
bl_registry *bl__lua_registry(lua_State *L);
/* Finds a plugin of `kind` by name; NULL with the core's message in the state's context when
 * there is none (so a caller can try something else), raises on other errors. */
const bl_plugin *bl__lua_find_plugin(lua_State *L, bl_plugin_kind kind, const char *name);

/* Raises the message of `ctx` (with "<where>: " in front when where is not NULL). */
int bl__lua_raise(lua_State *L, bl_ctx *ctx, const char *where);

/* Registers the metatable `tname` with the given metamethods and a method table as
 * __index (methods may be NULL). Leaves nothing on the stack. */
void bl__lua_newclass(lua_State *L, const char *tname, const luaL_Reg *meta,
                      const luaL_Reg *methods);

/* Checks that every string key of the table at `idx` is one of `keys` (NULL-terminated); an
 * unknown key raises "<what>: unknown key 'epoch'; did you mean 'epochs'?" (or the list of
 * accepted keys when nothing is near), a non-string key raises too. */
void bl__lua_check_keys(lua_State *L, int idx, const char *const *keys, const char *what);

/* The error value at `idx` as a string: strings and numbers as they are, objects through
 * __tostring, "(error object is a nil value)" for others. The value at `idx` is replaced by
 * the string, which stays valid while it is there. */
const char *bl__lua_errstring(lua_State *L, int idx);

/* True for a function or a value with a __call metamethod. */
bool bl__lua_callable(lua_State *L, int idx);

/* A message handler for lua_pcall: adds a traceback to the error message. */
int bl__lua_traceback(lua_State *L);

/* ---- option tables (l_config.c) ------------------------------------------------------------ */

/* Converts the option table at `idx` (nil or absent = empty) into a new config. Lists are
 * converted to the list type `decl` declares for that name (may be NULL). Raises on a value
 * that cannot be an option ("<owner>: option 'hidden': ..."); frees nothing of the caller. */
bl_config *bl__lua_to_config(lua_State *L, int idx, const bl_option *decl, const char *owner);
/* Pushes a table {name = value, ...} of a validated config. */
void bl__lua_push_config(lua_State *L, const bl_config *cfg);
/* Pushes the array {{name=, type=, default=, help=}, ...} of a declaration (may be NULL). */
void bl__lua_push_options(lua_State *L, const bl_option *decl);
/* Converts and validates the option table at `idx` for `plugin`: a new validated config, or a
 * raised error naming the option and suggesting the nearest accepted one. */
bl_config *bl__lua_validated_config(lua_State *L, int idx, const bl_plugin *plugin);

/* ---- objects (l_dataset.c, l_model.c, l_scheduler.c, l_optim.c) ---------------------------- */

typedef struct lbl_dataset {
    bl_dataset *ds;                    /* NULL once closed */
    int busy;                          /* runs using it now: it cannot be closed */
    const bl_plugin *plugin;           /* valid while ds is open */
    char name[64];
} lbl_dataset;

/* A model spec: the plugin (retained) and validated options; each run builds its own net. */
typedef struct lbl_model {
    const bl_plugin *plugin;           /* NULL once closed */
    bl_config *opts;                   /* validated */
    char name[64];
} lbl_model;

typedef enum { LBL_SCHED_PLUGIN = 0, LBL_SCHED_LUA = 1 } lbl_sched_kind;

/* A scheduler spec: a C plugin with validated options, or a Lua schedule constructor with
 * its option table (user values 1 and 2). A run creates its own schedule from it. */
typedef struct lbl_scheduler {
    lbl_sched_kind kind;
    const bl_plugin *plugin;           /* LBL_SCHED_PLUGIN (retained); NULL once closed */
    bl_config *opts;                   /* LBL_SCHED_PLUGIN: validated */
    char name[64];
    int64_t max_batch;                 /* LBL_SCHED_LUA: declared by the schedule, or 0 */
    bool needs_gns;                    /* LBL_SCHED_LUA: declared by the schedule */
} lbl_scheduler;

lbl_dataset *bl__lua_check_dataset(lua_State *L, int idx);   /* raises when closed */
lbl_model *bl__lua_check_model(lua_State *L, int idx);       /* raises when closed */
lbl_scheduler *bl__lua_check_scheduler(lua_State *L, int idx);
bl_optim_config *bl__lua_check_optim(lua_State *L, int idx);
/* Pushes a new optimizer object holding a copy of `cfg`. */
void bl__lua_push_optim(lua_State *L, const bl_optim_config *cfg);

/* For a Lua schedule spec at `idx`: calls its constructor with its options and pushes the
 * schedule function; *max_batch / *needs_gns receive what the schedule declares (0 / false
 * when it does not). Raises on a bad constructor result. */
void bl__lua_new_schedule(lua_State *L, int idx, int64_t *max_batch, bool *needs_gns);
/* Parses the schedule at the stack top (a function, a callable table or a table with `next`);
 * replaces it with what to call and fills what it declares (max_batch, needs_gns). Raises
 * "<who>: expected a schedule ..." for anything else. */
void bl__lua_schedule_result(lua_State *L, const char *who, int64_t *max_batch,
                             bool *needs_gns);

/* ---- a bl.train call in progress (l_train.c, l_callback.c) --------------------------------- */

/* Everything one bl.train call holds. It lives in a userdata marked to-be-closed on the stack
 * of bl.train, so an error raised anywhere frees it. The Lua values the callbacks need sit in
 * fixed slots of that same stack (absolute indices; 0 = not used): the engine calls back on
 * the thread that called bl.train, while bl.train's frame is live. */
typedef struct lbl_job {
    bl_ctx *ctx;
    lbl_dataset *data;   /* marked busy while the job holds it */
    bl_config *spec;     /* the run spec's settings, validated */
    char *config_json;   /* the configuration recorded in the store, or NULL */
    double *milestones;
    bl_run_result result;
    bool have_result;

    lua_State *L;
    int msgh;            /* message handler (traceback) */
    int fn;              /* the Lua schedule: function or callable */
    int state;           /* the state table given to fn, reused for every call */
    int keys;            /* the state's keys, interned once: keys[LBL_K_*] */
    int run;             /* the run table (given to stop, returned by bl.train) */
    int stop;            /* stop criterion */
    int on_point;        /* point observer */
    int point;           /* the table of the latest evaluation point */
    bl_train_state shown; /* the values the state table holds now */
    int64_t max_batch;   /* for messages */
    bool have_last;      /* state.last is set */
    bl_eval_point last;  /* the point state.last shows */
    bool have_point;     /* slot `point` holds the table of `point_seen` */
    bl_eval_point point_seen;
    char reason[128];    /* a stop criterion's reason */
    bl_run_output outputs[4]; /* the run's outputs (batchlab/run.h), closed with the job */
    size_t n_outputs;
} lbl_job;

/* A new job userdata (closed, with its own context) at the stack top (l_train.c). */
lbl_job *bl__lua_new_job(lua_State *L);
/* bl.train's translation of the table at index 1 (the only value on the stack) into `plan`
 * (l_train.c): pushes a new job (index 2, to-be-closed: it holds what the plan borrows), its
 * message handler (3) and the run table (j->run), then reads the dataset and model, the run
 * spec's settings (validated into j->spec), the composite tables, the optimizer, the batch or
 * schedule and the callbacks, and sets the host's interrupt flag. Leaves the dataset (and a
 * schedule) on the stack for as long as the plan is used. Checks no keys (the caller's
 * business). Raises on a bad value. */
lbl_job *bl__lua_job_plan(lua_State *L, bl_run_plan *plan);
/* Translates the bl.train table at index 1 (the only value on the stack) into *plan: checks
 * its keys, pushes a new job (index 2, to-be-closed: it holds what the plan borrows — the
 * spec's strings, the dataset marked busy, the milestones) and the values its callbacks
 * need, and echoes the configuration into the run table (j->run). Adds no outputs and runs
 * nothing (bl.train adds its outputs and calls bl_run; bl.probe calls bl_probe). Raises on a
 * bad table, and "interrupted" when the host's flag is up. */
lbl_job *bl__lua_train_plan(lua_State *L, bl_run_plan *plan);

/* Keys of the schedule's state table. */
enum {
    LBL_K_STEP = 1, LBL_K_EPOCH, LBL_K_EPOCH_PROGRESS, LBL_K_SAMPLES, LBL_K_TRAIN_SIZE,
    LBL_K_WALL, LBL_K_BATCH, LBL_K_LR, LBL_K_GNS, LBL_K_LAST, LBL_K_COUNT = LBL_K_LAST
};

/* Creates the state table and its keys in the job's slots (after j->fn is set). */
void bl__lua_prepare_schedule(lua_State *L, lbl_job *j);
/* bl_batch_fn, bl_criterion_fn and bl_point_fn calling the Lua values of a job. */
int bl__lua_batch_fn(void *user, bl_ctx *ctx, const bl_train_state *state, int64_t *batch,
                     double *lr_factor);
int bl__lua_criterion(void *user, bl_ctx *ctx, const bl_eval_point *point,
                      const char **reason);
int bl__lua_on_point(void *user, bl_ctx *ctx, const bl_eval_point *point);

/* The outputs of a run (batchlab/run.h), appended to j->outputs.
 *
 * tensorboard = "DIR" (l_tensorboard.c): when the bl.train table (index 1) has the key, or
 * the host set a default, adds an event file output for DIR/<label> with the table's
 * hyperparameters; raises on a bad value.
 *
 * The results store (l_store.c): db =, experiment =, resume = on bl.train. When the run is to
 * be recorded, opens the store, sets j->config_json and adds the store output; with resume,
 * when a finished run of the same configuration is there, instead fills the run table from
 * it, pushes the run table and returns true (bl.train returns it). Raises on store errors.
 *
 * The script's callbacks (l_callback.c): an output whose point hook calls on_point / feeds the
 * stop criterion (bl__lua_on_point) and whose begin echoes the run id into the run table. */
void bl__lua_tensorboard_output(lua_State *L, lbl_job *j, const char *label);
bool bl__lua_store_output(lua_State *L, lbl_job *j, const bl_train_config *cfg,
                          const char *label, bool quiet);
void bl__lua_callback_output(lbl_job *j, bl_run_output *out);
/* Sets the run table's `run_id` and `tensorboard` from the job's outputs (once known). */
void bl__lua_outputs_echo(lua_State *L, lbl_job *j);
/* For bl.sweep (table at `sweep`): gives the run's bl.train table at `ci` the sweep's `db`,
 * and — when the sweep records (its db, resume = true, the run's own db / experiment /
 * resume, or the host's store) — experiment = the sweep's `name` and resume = the sweep's
 * `resume` (default true), unless the run's table has its own. Raises on bad values. */
void bl__lua_store_sweep(lua_State *L, int sweep, int ci, const char *name);

/* ---- isolated sweeps (l_isolate.c, l_store.c) ------------------------------------------------
 *
 * bl__lua_pack writes the plain value at `idx` (nil, booleans, numbers, strings, tables of
 * them; other values and the pairs holding them are left out) as bytes (*data malloc'd;
 * BL_ENOMEM); bl__lua_unpack pushes the value back and returns true, or pushes nothing and
 * returns false for malformed bytes.
 *
 * bl__lua_store_lost (parent side): records the run of a child that died, from the note its
 * bl.train sent (the store, experiment, label, configuration and seed — sent by
 * bl__lua_store_output in a child, when isolate_fd ≥ 0); returns its run id, or 0 when the
 * child never got to a store (no note). Raises on store errors. */
int bl__lua_pack(lua_State *L, int idx, char **data, size_t *len);
bool bl__lua_unpack(lua_State *L, const void *data, size_t len);
struct bl_isolate_loss;
int64_t bl__lua_store_lost(lua_State *L, const struct bl_isolate_loss *loss, bool quiet);

/* ---- results (l_result.c) ------------------------------------------------------------------ */

/* Pushes a point table {step=, epoch=, ...}. */
void bl__lua_push_point(lua_State *L, const bl_eval_point *p);
/* Updates the point table at `idx` in place (its keys exist; no allocation). */
void bl__lua_fill_point(lua_State *L, int idx, const bl_eval_point *p);
/* Sets the fields of a finished run into the table at `idx`: status, stopped_by, error,
 * steps, samples, epochs, time, eval_time, final, history, and the target fields. */
void bl__lua_set_result(lua_State *L, int idx, const bl_train_config *cfg,
                        const bl_run_result *r);

/* ---- module functions, one per file -------------------------------------------------------- */

int bl__lua_dataset(lua_State *L);
int bl__lua_model(lua_State *L);
int bl__lua_scheduler(lua_State *L);
int bl__lua_train(lua_State *L);
int bl__lua_sweep(lua_State *L);
int bl__lua_fit_lr(lua_State *L);   /* bl.fit_lr (l_tune.c) */
int bl__lua_find_max_batch(lua_State *L);
int bl__lua_probe(lua_State *L);
/* Registers the metatables and pushes the `optim` subtable. */
void bl__lua_open_dataset(lua_State *L);
void bl__lua_open_model(lua_State *L);
void bl__lua_open_scheduler(lua_State *L);
void bl__lua_open_optim(lua_State *L);
/* Sets bl.recommend and bl.fit_steps into the module table at the top (l_recommend.c). */
void bl__lua_open_recommend(lua_State *L);
/* bl.critical_batch{...}: branched training (l_branched.c). */
int bl__lua_critical_batch(lua_State *L);
/* Sets bl.read_snapshot into the module table at the top (l_snapshot.c). */
void bl__lua_open_snapshot(lua_State *L);
/* bl._util.schedule(name, opts): a scheduler plugin as a callable object (l_schedule.c). */
int bl__lua_schedule_object(lua_State *L);
/* Pushes bl._util: the C owners of helpers the Lua library shares (l_util.c). */
void bl__lua_open_util(lua_State *L);

#endif
