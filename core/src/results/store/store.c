/* The results store: opening (inspect read-only first, then create or migrate), transactions
 * that wait their turn, and the writes of a run's life — begin, points, end, stale runs.
 * Reads are in store_query.c, the schema in store_schema.c. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "batchlab/json.h"
#include "batchlab/version.h"
#include "json/json_internal.h"
#include "results/store/store_internal.h"
#include "base/clock.h"
#include "base/grow.h"

const char *bl_store_default_path(void)
{
    const char *env = getenv("BATCHLAB_DB");
    return env && *env ? env : "batchlab.db";
}

const char *bl_store_path(const bl_store *store)
{
    return store ? store->path : "";
}

/* ---- small helpers -------------------------------------------------------------------------- */

int bl__store_fail(bl_ctx *ctx, const bl_store *s, const char *what)
{
    return bl_error(ctx, BL_ESTORE, "results store '%s': %s: %s", s->path, what,
                    sqlite3_errmsg(s->db));
}

int bl__store_prepare(bl_ctx *ctx, bl_store *s, const char *sql, sqlite3_stmt **stmt)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, stmt, NULL) != SQLITE_OK) {
        *stmt = NULL;
        return bl__store_fail(ctx, s, "preparing a statement");
    }
    return BL_OK;
}

void bl__store_now(char buf[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Sleeps `*delay_ms` plus up to as much again at random (so writers that collided do not
 * collide again in step), then doubles the delay up to 200 ms. */
static void backoff(unsigned *delay_ms, unsigned *seed)
{
    unsigned ms = *delay_ms + (unsigned)(rand_r(seed) % (*delay_ms + 1));
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    *delay_ms = *delay_ms < 100 ? *delay_ms * 2 : 200;
}

static bool is_busy(int rc)
{
    return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

/* Runs `sql` until it succeeds or fails for another reason than a lock held elsewhere. The
 * busy timeout already waits inside SQLite; this loop covers the cases where SQLite returns
 * SQLITE_BUSY at once (a WAL being recovered, a lock upgrade that would deadlock) and waits
 * longer than one timeout. */
static int exec_retry(bl_ctx *ctx, bl_store *s, const char *sql, const char *what)
{
    double deadline = bl__now() + BL__STORE_LOCK_DEADLINE_S;
    unsigned delay = 1, seed = (unsigned)getpid() ^ (unsigned)time(NULL);
    for (;;) {
        int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            return BL_OK;
        rc = sqlite3_extended_errcode(s->db);
        if (!is_busy(rc))
            return bl__store_fail(ctx, s, what);
        if (bl__now() > deadline)
            return bl_error(ctx, BL_ESTORE,
                            "results store '%s': %s: the database stayed locked by another "
                            "process for %.0f s",
                            s->path, what, BL__STORE_LOCK_DEADLINE_S);
        backoff(&delay, &seed);
    }
}

int bl__store_begin(bl_ctx *ctx, bl_store *s)
{
    return exec_retry(ctx, s, "BEGIN IMMEDIATE", "starting a write");
}

int bl__store_commit(bl_ctx *ctx, bl_store *s)
{
    int rc = exec_retry(ctx, s, "COMMIT", "committing");
    if (rc != BL_OK)
        bl__store_rollback(s);
    return rc;
}

void bl__store_rollback(bl_store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int bl__store_step(bl_store *s, sqlite3_stmt *stmt)
{
    double deadline = bl__now() + BL__STORE_LOCK_DEADLINE_S;
    unsigned delay = 1, seed = (unsigned)getpid();
    for (;;) {
        int rc = sqlite3_step(stmt);
        if (!is_busy(rc) || !sqlite3_get_autocommit(s->db) || bl__now() > deadline)
            return rc;
        sqlite3_reset(stmt);
        backoff(&delay, &seed);
    }
}

/* ---- process identity (for stale runs) ------------------------------------------------------ */

/* The start time of process `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat);
 * 0 when unknown. */
static unsigned long long proc_start_time(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p)
        return 0;
    /* After ") ": field 3 (state) … field 22 (starttime). */
    int field = 2;
    for (p++; *p && field < 22; p++)
        if (*p == ' ')
            field++;
    return strtoull(p, NULL, 10);
}

/* "<boot id> <pid namespace>" of this process: two processes with the same host name see each
 * other's pids only when these agree. "" when unknown. */
static void proc_scope(char *out, size_t cap)
{
    char boot[64] = "", ns[64] = "";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (!fgets(boot, sizeof boot, f))
            boot[0] = '\0';
        fclose(f);
        boot[strcspn(boot, "\n")] = '\0';
    }
    ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
    ns[n > 0 ? n : 0] = '\0';
    if (boot[0] && ns[0])
        snprintf(out, cap, "%.63s %.63s", boot, ns);
    else
        out[0] = '\0';
}

/* This process's identity as stored in runs.pid_start: "<boot id> <pid ns> <start time>". */
static void proc_identity(char *out, size_t cap)
{
    char scope[140];
    proc_scope(scope, sizeof scope);
    unsigned long long st = proc_start_time((long)getpid());
    if (scope[0] && st)
        snprintf(out, cap, "%s %llu", scope, st);
    else
        out[0] = '\0';
}

/* True when the process that wrote a "running" row is known to be gone. */
bool bl__store_process_gone(const bl_store *s, const char *host, long pid, const char *identity)
{
    if (!host || strcmp(host, s->host) != 0 || pid <= 0)
        return false; /* another machine: cannot tell */
    char scope[140];
    proc_scope(scope, sizeof scope);
    const char *space = identity ? strrchr(identity, ' ') : NULL;
    if (identity && identity[0]) {
        /* Another boot or another pid namespace (a container with the same host name)? */
        size_t len = space ? (size_t)(space - identity) : 0;
        if (!space || !scope[0] || strlen(scope) != len || strncmp(scope, identity, len) != 0)
            return false;
    }
    if (kill((pid_t)pid, 0) == -1 && errno == ESRCH)
        return true;
    if (space) {
        unsigned long long now = proc_start_time(pid);
        if (now && now != strtoull(space + 1, NULL, 10))
            return true; /* the pid was reused by a later process */
    }
    return false;
}

/* ---- opening -------------------------------------------------------------------------------- */

/* A non-empty file shorter than a SQLite header, or without its magic string, is not a
 * database; say so before SQLite sees it. */
static int check_header(bl_ctx *ctx, const char *path, off_t size)
{
    static const char magic[16] = "SQLite format 3";
    char head[16] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return bl_error(ctx, BL_EIO, "cannot read results store '%s': %s", path,
                        strerror(errno));
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    if (size < 100 || n != sizeof head || memcmp(head, magic, sizeof magic) != 0)
        return bl_error(ctx, BL_ESTORE,
                        "'%s' is not a batchlab results store: it is not a SQLite database "
                        "(give another file with --db or BATCHLAB_DB; the file was not "
                        "changed)",
                        path);
    return BL_OK;
}

/* "file:<path>?immutable=1" with the characters a URI path cannot hold escaped; NULL when
 * memory ran out. */
static char *immutable_uri(const char *path)
{
    static const char tail[] = "?immutable=1";
    char *uri = malloc(5 + 3 * strlen(path) + sizeof tail);
    if (!uri)
        return NULL;
    char *o = uri;
    memcpy(o, "file:", 5);
    o += 5;
    for (const char *p = path; *p; p++) {
        if (*p == '%' || *p == '?' || *p == '#') {
            snprintf(o, 4, "%%%02X", (unsigned)(unsigned char)*p);
            o += 3;
        } else {
            *o++ = *p;
        }
    }
    memcpy(o, tail, sizeof tail);
    return uri;
}

/* True when a read-only connection could not start reading because SQLite needs to write
 * beside the file (a WAL store's -shm in a directory this user cannot write). */
static bool needs_shm(int rc)
{
    return (rc & 0xff) == SQLITE_READONLY || (rc & 0xff) == SQLITE_CANTOPEN;
}

/* True when `path` has a non-empty -wal file beside it: committed writes not yet in the
 * main file, which an immutable connection would not see. */
static bool has_wal(const char *path)
{
    size_t n = strlen(path);
    char *wal = malloc(n + 5);
    if (!wal)
        return true;
    memcpy(wal, path, n);
    memcpy(wal + n, "-wal", 5);
    struct stat st;
    bool yes = stat(wal, &st) == 0 && st.st_size > 0;
    free(wal);
    return yes;
}

static int open_connection(bl_ctx *ctx, const char *path, int sqlite_flags, sqlite3 **out)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, sqlite_flags, NULL);
    if (rc != SQLITE_OK) {
        int code = rc == SQLITE_NOMEM ? BL_ENOMEM : BL_EIO;
        bl_error(ctx, code, "cannot %s results store '%s': %s",
                 (sqlite_flags & SQLITE_OPEN_CREATE) ? "create" : "open", path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return code;
    }
    sqlite3_busy_timeout(db, BL__STORE_BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(db, 1);
    *out = db;
    return BL_OK;
}

/* A read-only connection that can read: a store in WAL mode needs its -shm file, which SQLite
 * creates beside the database; in a directory this user cannot write (another user's store)
 * that fails with "attempt to write a readonly database". Then, when no -wal file holds
 * writes beyond the main file, the file is opened immutable (nothing beside it is needed). */
static int open_readonly(bl_ctx *ctx, const char *path, sqlite3 **out)
{
    sqlite3 *db;
    int rc = open_connection(ctx, path, SQLITE_OPEN_READONLY, &db);
    if (rc != BL_OK)
        return rc;
    int probe = sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
    if (probe == SQLITE_OK || !needs_shm(sqlite3_extended_errcode(db))) {
        *out = db;
        return BL_OK;
    }
    char reason[256];
    snprintf(reason, sizeof reason, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
    if (has_wal(path))
        return bl_error(ctx, BL_ESTORE,
                        "results store '%s' cannot be read by this user: %s, and its -wal file "
                        "holds writes not yet in the main file (open it once as its owner, or "
                        "copy the file and its -wal file somewhere writable; the file was not "
                        "changed)",
                        path, reason);
    char *uri = immutable_uri(path);
    if (!uri)
        return bl_error(ctx, BL_ENOMEM, "out of memory opening results store '%s'", path);
    rc = open_connection(ctx, uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, out);
    free(uri);
    if (rc != BL_OK)
        bl_error(ctx, rc, "cannot open results store '%s' read-only: %s", path, reason);
    return rc;
}

/* Looks at an existing file through a read-only connection; with `check`, also runs
 * PRAGMA quick_check, so that a damaged store is refused before anything writes to it. */
static int inspect_readonly(bl_ctx *ctx, const char *path, bool check, int *version)
{
    sqlite3 *db;
    int rc = open_readonly(ctx, path, &db);
    if (rc != BL_OK)
        return rc;
    rc = bl__store_inspect(ctx, db, path, version);
    if (rc == BL_OK && check && *version > 0)
        rc = bl__store_quick_check(ctx, db, path);
    sqlite3_close(db);
    return rc;
}

/* Creates or migrates under the write lock, then switches to WAL. */
static int prepare_writable(bl_ctx *ctx, bl_store *s)
{
    int version, rc;
    /* Foreign keys stay off until the schema is current: a migration that rebuilds a table
     * drops the old one, which with them on would delete the points it refers to. */
    if ((rc = bl__store_begin(ctx, s)) != BL_OK)
        return rc;
    /* Look again under the lock: another process may have created it meanwhile, or the
     * file may have been replaced since the read-only look. */
    if ((rc = bl__store_inspect(ctx, s->db, s->path, &version)) != BL_OK) {
        bl__store_rollback(s);
        return rc;
    }
    if (version < BL_STORE_SCHEMA_VERSION &&
        (rc = bl__store_migrate(ctx, s, version)) != BL_OK) {
        bl__store_rollback(s);
        return rc;
    }
    if ((rc = bl__store_commit(ctx, s)) != BL_OK)
        return rc;
    if ((rc = exec_retry(ctx, s, "PRAGMA foreign_keys = ON", "configuring")) != BL_OK)
        return rc;
    return exec_retry(ctx, s, "PRAGMA journal_mode = WAL", "switching to WAL mode");
}

int bl_store_open_flags(bl_ctx *ctx, const char *path, unsigned flags, bl_store **out)
{
    if (!path || !*path || !out)
        return bl_error(ctx, BL_EINVAL, "bl_store_open: %s", !out ? "NULL out" : "no path");
    struct stat st;
    bool exists = stat(path, &st) == 0;
    if (!exists && errno != ENOENT)
        return bl_error(ctx, BL_EIO, "cannot open results store '%s': %s", path,
                        strerror(errno));
    if (exists && S_ISDIR(st.st_mode))
        return bl_error(ctx, BL_EIO, "results store '%s' is a directory; give a file name",
                        path);
    bool empty = exists && st.st_size == 0;
    int rc, version = 0;
    if ((!exists || empty) && !(flags & BL_STORE_CREATE))
        return bl_error(ctx, BL_ENOTFOUND, "no results store at '%s'%s", path,
                        empty ? " (the file is empty)" : "");
    if (exists && !empty && (rc = check_header(ctx, path, st.st_size)) != BL_OK)
        return rc;
    bool readonly = (flags & BL_STORE_READONLY) != 0;
    if (exists && (rc = inspect_readonly(ctx, path, !readonly, &version)) != BL_OK)
        return rc;
    /* An older store is read as it is (the readers leave out the columns it lacks); only one
     * without the first layout cannot be. */
    if (readonly && version < 1)
        return bl_error(ctx, BL_ESTORE,
                        "results store '%s' has schema version %d and needs a migration to "
                        "version %d, which writes: open it once for writing",
                        path, version, BL_STORE_SCHEMA_VERSION);

    bl_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return bl_error(ctx, BL_ENOMEM, "out of memory opening results store '%s'", path);
    }
    s->readonly = readonly;
    s->version = readonly ? version : BL_STORE_SCHEMA_VERSION;
    if (gethostname(s->host, sizeof s->host - 1) != 0)
        s->host[0] = '\0';
    proc_identity(s->proc_id, sizeof s->proc_id);
    int sqlite_flags = SQLITE_OPEN_READWRITE | ((flags & BL_STORE_CREATE) ? SQLITE_OPEN_CREATE : 0);
    rc = readonly ? open_readonly(ctx, path, &s->db)
                  : open_connection(ctx, path, sqlite_flags, &s->db);
    if (rc == BL_OK && !readonly)
        rc = prepare_writable(ctx, s);
    if (rc != BL_OK) {
        bl_store_close(s);
        return rc;
    }
    *out = s;
    return BL_OK;
}

int bl_store_open(bl_ctx *ctx, const char *path, bl_store **out)
{
    return bl_store_open_flags(ctx, path, BL_STORE_CREATE, out);
}

void bl_store_close(bl_store *store)
{
    if (!store)
        return;
    bl_store_release(NULL, store);
    sqlite3_close(store->db); /* statements are always finalized before a call returns */
    free(store->path);
    free(store);
}

/* ---- writes --------------------------------------------------------------------------------- */

static int check_writable(bl_ctx *ctx, const bl_store *s)
{
    if (!s)
        return bl_error(ctx, BL_EINVAL, "results store: NULL store");
    if (s->readonly)
        return bl_error(ctx, BL_EINVAL, "results store '%s' was opened read-only", s->path);
    return BL_OK;
}

static void bind_real(sqlite3_stmt *st, int i, double v)
{
    if (isfinite(v))
        sqlite3_bind_double(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

/* A count where -1 (or less) means "not recorded". */
static void bind_count(sqlite3_stmt *st, int i, int64_t v)
{
    if (v >= 0)
        sqlite3_bind_int64(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v && *v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

/* Runs a statement that returns no rows inside the caller's transaction. */
static int step_done(bl_ctx *ctx, bl_store *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return bl__store_fail(ctx, s, what);
    return BL_OK;
}

int bl_store_find_experiment(bl_ctx *ctx, bl_store *store, const char *name, int64_t *id)
{
    if (!store || !name || !id)
        return bl_error(ctx, BL_EINVAL, "bl_store_find_experiment: NULL argument");
    sqlite3_stmt *st;
    int rc = bl__store_prepare(ctx, store, "SELECT id FROM experiments WHERE name = ?", &st);
    if (rc != BL_OK)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    int step = bl__store_step(store, st);
    if (step == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return BL_OK;
    }
    sqlite3_finalize(st);
    if (step != SQLITE_DONE)
        return bl__store_fail(ctx, store, "looking up an experiment");

    /* Not there: list the names there are. */
    char names[512] = "";
    size_t len = 0;
    int count = 0;
    if (bl__store_prepare(ctx, store, "SELECT name FROM experiments ORDER BY name", &st) ==
        BL_OK) {
        while (bl__store_step(store, st) == SQLITE_ROW) {
            const char *n = (const char *)sqlite3_column_text(st, 0);
            if (len < sizeof names - 8)
                len += (size_t)snprintf(names + len, sizeof names - len, "%s'%s'",
                                        count ? ", " : "", n ? n : "");
            count++;
        }
        sqlite3_finalize(st);
    }
    if (len >= sizeof names - 8)
        snprintf(names + sizeof names - 8, 8, ", ...");
    if (count == 0)
        return bl_error(ctx, BL_ENOTFOUND,
                        "results store '%s' has no experiment named '%s' (it has none)",
                        store->path, name);
    return bl_error(ctx, BL_ENOTFOUND,
                    "results store '%s' has no experiment named '%s'; it has: %s", store->path,
                    name, names);
}

int bl_store_experiment(bl_ctx *ctx, bl_store *store, const char *name, int64_t *id)
{
    int rc;
    if ((rc = check_writable(ctx, store)) != BL_OK)
        return rc;
    if (!name || !*name || !id)
        return bl_error(ctx, BL_EINVAL, "results store '%s': an experiment needs a name",
                        store->path);
    int64_t found = 0;
    if ((rc = bl__store_begin(ctx, store)) != BL_OK)
        return rc;
    sqlite3_stmt *st = NULL;
    char now[32];
    bl__store_now(now);
    rc = bl__store_prepare(ctx, store,
                           "INSERT INTO experiments (name, created) VALUES (?, ?) "
                           "ON CONFLICT (name) DO NOTHING",
                           &st);
    if (rc == BL_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, now, -1, SQLITE_TRANSIENT);
        rc = step_done(ctx, store, st, "creating an experiment");
        sqlite3_finalize(st);
    }
    if (rc == BL_OK)
        rc = bl_store_find_experiment(ctx, store, name, &found);
    if (rc == BL_OK)
        rc = bl__store_commit(ctx, store);
    else
        bl__store_rollback(store);
    if (rc != BL_OK)
        return rc;
    if ((rc = bl_store_mark_stale(ctx, store, found, NULL)) != BL_OK)
        return rc;
    *id = found;
    return BL_OK;
}

int bl_store_run_begin(bl_ctx *ctx, bl_store *store, int64_t experiment_id, const char *label,
                       const char *config_json, uint64_t seed, int64_t *run_id)
{
    int rc;
    if ((rc = check_writable(ctx, store)) != BL_OK)
        return rc;
    if (!run_id || experiment_id < 0)
        return bl_error(ctx, BL_EINVAL, "bl_store_run_begin: bad argument");
    char *canon = NULL, hash[17], now[32];
    if ((rc = bl_json_canonical(ctx, config_json ? config_json : "{}", &canon)) != BL_OK)
        return bl_error_prefix(ctx, "results store '%s': the run's configuration",
                               store->path);
    snprintf(hash, sizeof hash, "%016llx",
             (unsigned long long)bl__fnv1a64(canon, strlen(canon)));
    bl__store_now(now);

    sqlite3_stmt *st = NULL;
    if ((rc = bl__store_begin(ctx, store)) != BL_OK) {
        free(canon);
        return rc;
    }
    rc = bl__store_prepare(ctx, store,
                           "INSERT INTO runs (experiment_id, label, config_json, config_hash, "
                           "seed, status, started, host, pid, pid_start, batchlab_version) "
                           "VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)",
                           &st);
    if (rc == BL_OK) {
        if (experiment_id > 0)
            sqlite3_bind_int64(st, 1, experiment_id);
        else
            sqlite3_bind_null(st, 1);
        bind_text(st, 2, label);
        sqlite3_bind_text(st, 3, canon, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, hash, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)seed);
        sqlite3_bind_text(st, 6, now, -1, SQLITE_TRANSIENT);
        bind_text(st, 7, store->host);
        sqlite3_bind_int64(st, 8, (sqlite3_int64)getpid());
        bind_text(st, 9, store->proc_id);
        sqlite3_bind_text(st, 10, bl_version(), -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            if (sqlite3_extended_errcode(store->db) == SQLITE_CONSTRAINT_FOREIGNKEY)
                rc = bl_error(ctx, BL_ENOTFOUND, "results store '%s' has no experiment %lld",
                              store->path, (long long)experiment_id);
            else
                rc = bl__store_fail(ctx, store, "recording the start of a run");
        }
        sqlite3_finalize(st);
    }
    free(canon);
    int64_t id = sqlite3_last_insert_rowid(store->db);
    if (rc == BL_OK)
        rc = bl__store_commit(ctx, store);
    else
        bl__store_rollback(store);
    if (rc == BL_OK)
        *run_id = id;
    return rc;
}

static const char insert_point_sql[] =
    "INSERT INTO points (run_id, step, samples, epoch, wall, batch, lr, train_loss, "
    "train_accuracy, val_loss, val_accuracy, gns, samples_per_sec) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/* Inserts one point with a prepared insert_point_sql statement (reset here). */
static int insert_point(bl_ctx *ctx, bl_store *s, sqlite3_stmt *st, int64_t run_id,
                        const bl_eval_point *p)
{
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int64(st, 2, p->step);
    sqlite3_bind_int64(st, 3, p->samples);
    bind_real(st, 4, p->epoch);
    bind_real(st, 5, p->wall);
    sqlite3_bind_int64(st, 6, p->batch);
    bind_real(st, 7, p->lr);
    bind_real(st, 8, p->train_loss);
    bind_real(st, 9, p->train_accuracy);
    bind_real(st, 10, p->val_loss);
    bind_real(st, 11, p->val_accuracy);
    bind_real(st, 12, p->gns);
    bind_real(st, 13, p->samples_per_sec);
    if (sqlite3_step(st) == SQLITE_DONE)
        return BL_OK;
    if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_FOREIGNKEY)
        return bl_error(ctx, BL_ENOTFOUND, "results store '%s' has no run %lld", s->path,
                        (long long)run_id);
    return bl__store_fail(ctx, s, "adding an evaluation point");
}

int bl_store_add_point(bl_ctx *ctx, bl_store *store, int64_t run_id, const bl_eval_point *point)
{
    int rc;
    if ((rc = check_writable(ctx, store)) != BL_OK)
        return rc;
    if (!point)
        return bl_error(ctx, BL_EINVAL, "bl_store_add_point: NULL point");
    sqlite3_stmt *st;
    if ((rc = bl__store_prepare(ctx, store, insert_point_sql, &st)) != BL_OK)
        return rc;
    if ((rc = bl__store_begin(ctx, store)) == BL_OK) {
        rc = insert_point(ctx, store, st, run_id, point);
        if (rc == BL_OK)
            rc = bl__store_commit(ctx, store);
        else
            bl__store_rollback(store);
    }
    sqlite3_finalize(st);
    return rc;
}

/* Adds the points of `r->history` past those the run already has. */
static int add_missing_points(bl_ctx *ctx, bl_store *s, int64_t run_id, const bl_run_result *r)
{
    sqlite3_stmt *st;
    int rc = bl__store_prepare(ctx, s, "SELECT count(*) FROM points WHERE run_id = ?", &st);
    if (rc != BL_OK)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    int64_t have = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    if (have < 0)
        return bl__store_fail(ctx, s, "counting a run's points");
    if (!r->history || (size_t)have >= r->history_count)
        return BL_OK;
    if ((rc = bl__store_prepare(ctx, s, insert_point_sql, &st)) != BL_OK)
        return rc;
    for (size_t i = (size_t)have; i < r->history_count && rc == BL_OK; i++)
        rc = insert_point(ctx, s, st, run_id, &r->history[i]);
    sqlite3_finalize(st);
    return rc;
}

int bl_store_run_end(bl_ctx *ctx, bl_store *store, int64_t run_id, const bl_run_result *r)
{
    int rc;
    if ((rc = check_writable(ctx, store)) != BL_OK)
        return rc;
    if (!r)
        return bl_error(ctx, BL_EINVAL, "bl_store_run_end: NULL result");
    const char *status = bl_run_status_name(r->status);
    if (r->status == BL_RUN_RUNNING || strcmp(status, "unknown") == 0)
        return bl_error(ctx, BL_EINVAL,
                        "results store '%s': run %lld cannot end with status '%s'",
                        store->path, (long long)run_id, status);
    char now[32];
    bl__store_now(now);
    sqlite3_stmt *st = NULL;
    if ((rc = bl__store_begin(ctx, store)) != BL_OK)
        return rc;
    rc = bl__store_prepare(ctx, store,
                           "UPDATE runs SET status = ?, stopped_by = ?, error = ?, ended = ?, "
                           "steps = ?, samples = ?, epochs = ?, time = ?, eval_time = ?, "
                           "train_loss = ?, train_accuracy = ?, val_loss = ?, "
                           "val_accuracy = ?, gns = ?, test_loss = ?, test_accuracy = ?, "
                           "time_to_target = ?, steps_to_target = ?, samples_to_target = ?, "
                           "epochs_to_target = ?, diverged_step = ?, max_batch_used = ?, "
                           "peak_device_bytes = ?, steps_to_target_error = ?, "
                           "step_time_median = ?, wall_time_to_target = ? WHERE id = ?",
                           &st);
    if (rc == BL_OK) {
        const bl_eval_point *f = &r->final;
        sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
        bind_text(st, 2, r->stopped_by);
        bind_text(st, 3, r->error);
        sqlite3_bind_text(st, 4, now, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 5, r->steps);
        sqlite3_bind_int64(st, 6, r->samples);
        bind_real(st, 7, r->epochs);
        bind_real(st, 8, r->time);
        bind_real(st, 9, r->eval_time);
        bind_real(st, 10, f->train_loss);
        bind_real(st, 11, f->train_accuracy);
        bind_real(st, 12, f->val_loss);
        bind_real(st, 13, f->val_accuracy);
        bind_real(st, 14, f->gns);
        bind_real(st, 15, r->test_loss);
        bind_real(st, 16, r->test_accuracy);
        bind_real(st, 17, r->time_to_target);
        bind_count(st, 18, r->steps_to_target);
        bind_count(st, 19, r->samples_to_target);
        bind_real(st, 20, r->epochs_to_target);
        bind_count(st, 21, r->diverged_step);
        sqlite3_bind_int64(st, 22, r->max_batch_used);
        sqlite3_bind_int64(st, 23, (sqlite3_int64)r->peak_device_bytes);
        bind_count(st, 24, r->steps_to_target_error);
        bind_real(st, 25, r->step_time_median);
        bind_real(st, 26, r->wall_time_to_target);
        sqlite3_bind_int64(st, 27, run_id);
        rc = step_done(ctx, store, st, "recording the end of a run");
        sqlite3_finalize(st);
        if (rc == BL_OK && sqlite3_changes(store->db) == 0)
            rc = bl_error(ctx, BL_ENOTFOUND, "results store '%s' has no run %lld",
                          store->path, (long long)run_id);
    }
    if (rc == BL_OK)
        rc = add_missing_points(ctx, store, run_id, r);
    if (rc == BL_OK)
        rc = bl__store_commit(ctx, store);
    else
        bl__store_rollback(store);
    return rc;
}

/* ---- stale runs ----------------------------------------------------------------------------- */

int bl_store_mark_stale(bl_ctx *ctx, bl_store *store, int64_t experiment_id, int64_t *marked)
{
    int rc;
    if ((rc = check_writable(ctx, store)) != BL_OK)
        return rc;
    if (marked)
        *marked = 0;
    /* Look first without the write lock: most of the time there is nothing to do. */
    sqlite3_stmt *st;
    rc = bl__store_prepare(ctx, store,
                           "SELECT id, host, pid, pid_start FROM runs WHERE status = 'running' "
                           "AND (?1 = 0 OR experiment_id = ?1) ORDER BY id",
                           &st);
    if (rc != BL_OK)
        return rc;
    sqlite3_bind_int64(st, 1, experiment_id);
    int64_t *gone = NULL;
    size_t n = 0, cap = 0;
    int step;
    while ((step = bl__store_step(store, st)) == SQLITE_ROW) {
        const char *host = (const char *)sqlite3_column_text(st, 1);
        long pid = (long)sqlite3_column_int64(st, 2);
        const char *ident = (const char *)sqlite3_column_text(st, 3);
        if (!bl__store_process_gone(store, host, pid, ident))
            continue;
        int64_t *g = bl__grow(gone, &cap, n + 1, sizeof *g);
        if (!g) {
            rc = bl_error(ctx, BL_ENOMEM, "out of memory reading results store '%s'",
                          store->path);
            break;
        }
        gone = g;
        gone[n++] = sqlite3_column_int64(st, 0);
    }
    if (rc == BL_OK && step != SQLITE_DONE)
        rc = bl__store_fail(ctx, store, "looking for stale runs");
    sqlite3_finalize(st);
    if (rc != BL_OK || n == 0) {
        free(gone);
        return rc;
    }

    char now[32];
    bl__store_now(now);
    int64_t changed = 0;
    if ((rc = bl__store_begin(ctx, store)) == BL_OK) {
        rc = bl__store_prepare(ctx, store,
                               "UPDATE runs SET status = 'interrupted', stopped_by = 'stale', "
                               "ended = ?1, error = COALESCE(error, 'the process (pid ' || pid "
                               "|| ' on ' || host || ') ended without recording the end of "
                               "the run') WHERE id = ?2 AND status = 'running'",
                               &st);
        for (size_t i = 0; rc == BL_OK && i < n; i++) {
            sqlite3_reset(st);
            sqlite3_bind_text(st, 1, now, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 2, gone[i]);
            rc = step_done(ctx, store, st, "marking a stale run interrupted");
            changed += sqlite3_changes(store->db);
        }
        sqlite3_finalize(st);
        if (rc == BL_OK)
            rc = bl__store_commit(ctx, store);
        else
            bl__store_rollback(store);
    }
    free(gone);
    if (rc == BL_OK && marked)
        *marked = changed;
    if (rc == BL_OK && changed > 0)
        bl_log(ctx, BL_LOG_INFO,
               "results store '%s': %lld run(s) left 'running' by a process that is gone are "
               "now marked interrupted",
               store->path, (long long)changed);
    return rc;
}
