/* The results store's internals, shared by store.c (opening, transactions, writes),
 * store_schema.c (identification and migrations) and store_query.c (reads). */
#ifndef BATCHLAB_STORE_INTERNAL_H
#define BATCHLAB_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>

#include "batchlab/store.h"

/* How long one SQLite call waits for a lock before returning SQLITE_BUSY (ms), and how long
 * the retry loop around it keeps trying in all (s). */
#define BL__STORE_BUSY_TIMEOUT_MS 5000
#define BL__STORE_LOCK_DEADLINE_S 300.0

struct bl_store {
    sqlite3 *db;
    char *path;
    bool readonly;
    int version;            /* the schema version: BL_STORE_SCHEMA_VERSION once writable; a
                               read-only store may be older (readers leave out what it lacks) */
    char host[256];         /* this process: host name, */
    char proc_id[192];      /* and identity (see bl__store_proc_id); "" when unknown */
    bool claimed;           /* holds the claim of (claim_experiment, claim_hash): released by
                               bl_store_release or bl_store_close (store_claim.c) */
    int64_t claim_experiment;
    char claim_hash[17];
};

/* ---- store.c -------------------------------------------------------------------------------- */

/* Records "results store '<path>': <what>: <sqlite message>" as BL_ESTORE and returns it. */
int bl__store_fail(bl_ctx *ctx, const bl_store *s, const char *what);

/* Prepares `sql`; on error records it (naming `what`). */
int bl__store_prepare(bl_ctx *ctx, bl_store *s, const char *sql, sqlite3_stmt **stmt);

/* sqlite3_step, retrying the first step of a read while the database is busy (recovery of a
 * WAL written by a killed process). Returns the SQLite code. */
int bl__store_step(bl_store *s, sqlite3_stmt *stmt);

/* BEGIN IMMEDIATE, retried with backoff while another connection writes; COMMIT, retried the
 * same way; ROLLBACK (errors ignored: it only ends what begin started). */
int bl__store_begin(bl_ctx *ctx, bl_store *s);
int bl__store_commit(bl_ctx *ctx, bl_store *s);
void bl__store_rollback(bl_store *s);

/* True when the process that wrote a row (host, pid, pid_start identity) is known to be gone:
 * same host, and the pid does not exist or belongs to a process started at another time. */
bool bl__store_process_gone(const bl_store *s, const char *host, long pid,
                            const char *identity);

/* A configuration as its 16-hex-digit hash: `config` when it is one (lower-cased), else the
 * hash of the JSON text (BL_EFORMAT when it is not JSON). */
int bl__store_config_hash(bl_ctx *ctx, const bl_store *s, const char *config, char hash[17]);

/* The current UTC time as "YYYY-MM-DDTHH:MM:SSZ". */
void bl__store_now(char buf[32]);

/* ---- store_schema.c ------------------------------------------------------------------------- */

/* Looks at an open connection to `path` and says what it is: on BL_OK *version is the schema
 * version of a batchlab store (0 for an empty database, ready to be created). Refuses (BL_ESTORE,
 * naming the file and the versions) a file that is not a SQLite database, another
 * application's database and a store newer than BL_STORE_SCHEMA_VERSION. Reads only. */
int bl__store_inspect(bl_ctx *ctx, sqlite3 *db, const char *path, int *version);

/* PRAGMA quick_check on an open connection to `path`: BL_OK when it says "ok", else BL_ESTORE
 * naming the file, the first problem found and what to do. Reads only. */
int bl__store_quick_check(bl_ctx *ctx, sqlite3 *db, const char *path);

/* Brings a store at `from` (< BL_STORE_SCHEMA_VERSION) to the current schema; the caller holds
 * a write transaction (bl__store_begin) and commits. */
int bl__store_migrate(bl_ctx *ctx, bl_store *s, int from);

#endif
