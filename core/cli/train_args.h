/* The flags of `batchlab train` and `batchlab find-batch` (train_args.c), and the pieces both
 * commands open from them. */
#ifndef BATCHLAB_CLI_TRAIN_ARGS_H
#define BATCHLAB_CLI_TRAIN_ARGS_H

#include <stdbool.h>
#include <stdio.h>

#include "batchlab/batchlab.h"

/* The objects of a run: plugins by name and their options (text, validated when opened). */
typedef struct common_opts {
    const char *model, *dataset, *scheduler;
    bl_config *model_opts, *data_opts, *sched_opts;
    bl_optim_config optim;          /* NAN fields: not given (the optimizer's defaults) */
    const char *optim_name;
    /* find-batch only (train takes these from the run spec) */
    const char *device;
    int threads;
    uint64_t seed;
} common_opts;

typedef struct train_args {
    common_opts common;
    bl_config *given;               /* run spec settings as given (text) */
    bl_config *spec;                /* validated: every setting */
    const char *db;                 /* --db FILE, or NULL */
    bool no_db;
} train_args;

typedef struct find_args {
    common_opts common;
    bl_find_batch_config fc;
} find_args;

/* Parses the flags; returns CLI_CONTINUE, or the exit status (help printed: CLI_OK; a usage
 * error printed: CLI_USAGE). The args are always initialized: free them. */
int train_args_parse(bl_ctx *ctx, int argc, char **argv, train_args *a);
void train_args_free(train_args *a);
/* True when the setting `name` was given on the command line (or chosen by the command, as
 * the one-epoch budget when none is given). */
bool train_args_given(const train_args *a, const char *name);
/* `batchlab train --help`: the usage, with one line per run spec setting made from the spec. */
void train_usage(FILE *out);

int find_args_parse(bl_ctx *ctx, int argc, char **argv, find_args *a);
void find_args_free(find_args *a);

/* The opened pieces: the device (find-batch only), the registry, the dataset, the model and
 * scheduler plugins and their validated options. */
typedef struct session {
    bl_device *dev;
    bl_registry *reg;
    bl_dataset *data;
    const bl_plugin *model, *scheduler;
    bl_config *model_opts, *sched_opts;   /* validated */
} session;

/* Resolves the optimizer, opens the pieces (the device only when open_device); prints the
 * error and returns -1 on failure (close_session even then). */
int open_session(bl_ctx *ctx, common_opts *o, bool open_device, session *s);
void close_session(session *s);

/* Writes `s` as a JSON string (the canonical escaper of bl_config_to_json). */
int cli_json_string(bl_ctx *ctx, FILE *f, const char *s);

#endif
