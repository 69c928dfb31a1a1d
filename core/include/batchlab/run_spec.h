/* batchlab — the run specification: every setting of one training run, declared once.
 *
 * A run is configured from a Lua table (bl.train), from command-line flags (batchlab train)
 * and, for the record, as JSON in the results store. All three go through this one table:
 * each setting has a name (the bl.train key; the flag is "--" + the name with '_' as '-'), a
 * type, a default, bounds and one line of help. Plain settings are checked by
 * bl_config_validate (typed values, "did you mean" for misspelt names) and by the bounds and
 * choices below; bl_run_spec_apply copies them into a bl_train_config.
 *
 * Some keys take objects only a binding can translate (a dataset, a model, an optimizer, a
 * Lua function): they are listed too (bl_run_spec_object_keys), so a binding accepts exactly
 * the spec's keys and the documentation lists them all.
 *
 * Composite settings have a text form that every front end shares:
 *   lr_scaling   "none" | "linear" | "sqrt"            (rule; base_batch, warmup_* apart)
 *   lr_schedule  "constant" | "step" | "cosine" | "linear"  (lr_gamma, lr_milestones apart)
 *   eval_every   "X" (epochs) | "steps=N" | "samples=N" | "epochs=X" | "auto" | "auto=N"
 *                (BL_EVAL_AUTO, batchlab/train.h; "auto" is N = 8)
 *   target       "" (none) | "X" (val_accuracy ≥ X) | "METRIC>=X" | "METRIC<=X" | "METRIC=X"
 *                (METRIC=X: at least for accuracies, at most for losses)
 */
#ifndef BATCHLAB_RUN_SPEC_H
#define BATCHLAB_RUN_SPEC_H

#include <stdbool.h>
#include <stddef.h>

#include "batchlab/config.h"
#include "batchlab/error.h"
#include "batchlab/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One plain setting of the run specification. */
typedef struct bl_run_setting {
    bl_option opt;                  /* name, type, default as option text, help */
    double min, max;                /* inclusive bounds of a number or integer; NAN = none */
    const char *const *choices;     /* a string's accepted values (NULL-terminated), or NULL */
    const char *metavar;            /* the value in help text: "N", "X", "RULE" */
} bl_run_setting;

/* The plain settings, in declaration order; *n receives their count. Static. */
BL_EXPORT const bl_run_setting *bl_run_spec_settings(size_t *n);

/* The same settings as a bl_option array ending with a NULL name, for bl_config_validate.
 * Static. */
BL_EXPORT const bl_option *bl_run_spec_options(void);

/* One key whose value is an object a binding translates (dataset, model, optimizer, ...). */
typedef struct bl_run_object_key {
    const char *name;
    const char *help;               /* one line */
} bl_run_object_key;

/* The object keys, ending with a NULL name. Static. */
BL_EXPORT const bl_run_object_key *bl_run_spec_object_keys(void);

/* The setting named `name`, or NULL. */
BL_EXPORT const bl_run_setting *bl_run_spec_find(const char *name);

/* Validates `in` (values under setting names; text is parsed) against the spec for `owner`
 * (e.g. "bl.train", "batchlab train": used in messages). On success *out is a new config the
 * caller frees holding every setting with its declared type (given or default). Errors
 * (BL_EOPTION, message naming the setting): an unknown name (with the nearest one suggested),
 * a wrong type, a value out of bounds ("<owner>: 'epochs' must be ≥ 0, got -1"; a number
 * that is not finite: "<owner>: 'epochs' must be a finite number in [0, 1e+06], got inf" —
 * the budgets epochs, max_steps and max_seconds have finite upper bounds), a string
 * that is not one of the choices (nearest suggested), a composite text that does not parse. */
BL_EXPORT int bl_run_spec_validate(bl_ctx *ctx, const bl_config *in, const char *owner,
                                   bl_config **out);

/* Copies the settings of a config validated by bl_run_spec_validate into `cfg` (the budget,
 * batch, LR rules, evaluation, GNS, target, ...). Objects (net, data, optimizer, scheduler,
 * callbacks) are left alone. cfg->lr_milestones points into `spec`, which must outlive cfg's
 * use. Errors: BL_EOPTION for a composite text that does not parse. */
BL_EXPORT int bl_run_spec_apply(bl_ctx *ctx, const bl_config *spec, const char *owner,
                                bl_train_config *cfg);

/* Checks a target value for `metric`: finite, and for an accuracy a fraction in [0, 1] (90
 * is refused with "did you mean 0.90?"). BL_EOPTION with the message in ctx. The one check of
 * bl.train's target (text and table forms), `batchlab train --target` and `report --target`. */
BL_EXPORT int bl_run_spec_check_target(bl_ctx *ctx, bl_metric metric, double value);

/* Parses a target text (see above) into cfg's has_target, target_metric, target_value and
 * target_higher_better; "" clears the target. BL_EOPTION on bad text (nearest metric named). */
BL_EXPORT int bl_run_spec_parse_target(bl_ctx *ctx, const char *text, bl_train_config *cfg);

/* Parses an eval_every text into cfg's eval_unit and eval_every. BL_EOPTION on bad text. */
BL_EXPORT int bl_run_spec_parse_eval_every(bl_ctx *ctx, const char *text,
                                           bl_train_config *cfg);

/* "checkpoint_every": "N" (steps, a whole number) or "Xs" (training seconds); "0" is off.
 * Sets *steps or *seconds (the other 0); BL_EOPTION with the accepted forms otherwise. */
BL_EXPORT int bl_run_spec_parse_checkpoint_every(bl_ctx *ctx, const char *text, int64_t *steps,
                                                 double *seconds);

/* The optimizer as the stored configuration records it: {"name":"sgd","nesterov":false,
 * "lr":...,"momentum":...,...} with every field (canonical JSON). *out is malloc'd; free it. */
BL_EXPORT int bl_run_spec_optim_json(bl_ctx *ctx, const bl_optim_config *optim, char **out);

/* The spec's default of `name` as option text ("1", "auto", ""), or NULL when the setting
 * does not exist or is required. */
BL_EXPORT const char *bl_run_spec_default(const char *name);

#ifdef __cplusplus
}
#endif
#endif
