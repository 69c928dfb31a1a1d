/* The isolated sweep executor (batchlab/sweep.h): one child process per point.
 *
 * Parent                                         Child (fork)
 *   pipe, fflush(NULL), fork ──────────────────►   own process group; SIGTERM/INT/HUP set `stop`
 *   poll the pipe (50 ms ticks):                   child_init(user, fd, &stop)
 *     notes ('N' frames), the result ('R')  ◄────  bl_isolate_note(...)      (any number)
 *     past the timeout: SIGTERM, +grace SIGKILL    bl_sweep_run_point(...)   (resume, run hooks)
 *     stop flag 1: SIGTERM; 2: SIGKILL             pack(...) → 'R' frame: rc, point, message,
 *   EOF + waitpid                                  payload; _exit(0)
 *   'R' frame and exit 0 → result hook; else → lost hook (crashed / timed out / interrupted)
 *   bl_sweep_record
 *
 * Frames on the pipe: one byte of kind, a uint64_t length, the bytes. The child is in a process
 * group of its own, so a Ctrl-C at the terminal reaches only the parent, which forwards one
 * SIGTERM (the child's run ends after its step and is recorded as interrupted); on Linux the
 * child also dies with the parent (PR_SET_PDEATHSIG). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "base/clock.h"
#include "batchlab/sweep.h"

enum { FRAME_NOTE = 'N', FRAME_RESULT = 'R' };

/* ---- the child ------------------------------------------------------------------------------- */

static volatile sig_atomic_t *child_stop;

static void on_child_signal(int sig)
{
    (void)sig;
    *child_stop = 1;
}

static bool write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        c += w;
        n -= (size_t)w;
    }
    return true;
}

static bool write_frame(int fd, char kind, const void *a, size_t na, const void *b, size_t nb)
{
    uint64_t len = (uint64_t)na + (uint64_t)nb;
    return write_all(fd, &kind, 1) && write_all(fd, &len, sizeof len) &&
           (na == 0 || write_all(fd, a, na)) && (nb == 0 || write_all(fd, b, nb));
}

int bl_isolate_note(bl_ctx *ctx, int fd, const void *data, size_t len)
{
    if (fd < 0 || !write_frame(fd, FRAME_NOTE, data, len, NULL, 0))
        return bl_error(ctx, BL_EIO, "isolated run: cannot write to the parent process: %s",
                        strerror(errno));
    return BL_OK;
}

/* The result frame's fixed head. */
typedef struct result_head {
    int32_t rc;
    uint32_t msg_len;
    bl_sweep_point point;
} result_head;

static void child_main(const bl_isolate_hooks *h, bl_sweep *sw, bl_ctx *ctx, size_t index,
                       int fd)
{
    static volatile sig_atomic_t own_stop;
    setpgid(0, 0);
    own_stop = 0;
    child_stop = h->interrupt ? h->interrupt : &own_stop;
    *child_stop = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_child_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (h->child_init)
        h->child_init(h->user, fd, child_stop);
    bl_sweep_point p;
    int rc = bl_sweep_run_point(sw, ctx, index, &p);
    void *data = NULL;
    size_t len = 0;
    if (h->pack && h->pack(h->user, ctx, index, rc, &data, &len) != BL_OK && rc == BL_OK)
        rc = BL_ENOMEM;
    const char *msg = rc != BL_OK ? bl_errmsg(ctx) : "";
    size_t msg_len = strlen(msg);
    result_head head = {.rc = rc, .msg_len = (uint32_t)msg_len, .point = p};
    char *frame = malloc(sizeof head + msg_len + 1);
    bool ok = frame != NULL;
    if (ok) {
        memcpy(frame, &head, sizeof head);
        memcpy(frame + sizeof head, msg, msg_len);
        ok = write_frame(fd, FRAME_RESULT, frame, sizeof head + msg_len, data, len);
    }
    free(frame);
    free(data);
    fflush(NULL);
    _exit(ok ? 0 : 70);
}

/* ---- the parent ------------------------------------------------------------------------------ */

typedef struct inbox {
    char *buf;
    size_t len, cap;
} inbox;

static bool inbox_add(inbox *in, const char *p, size_t n)
{
    if (in->len + n > in->cap) {
        size_t cap = in->cap ? in->cap : 4096;
        while (cap < in->len + n)
            cap *= 2;
        char *b = realloc(in->buf, cap);
        if (!b)
            return false;
        in->buf = b;
        in->cap = cap;
    }
    memcpy(in->buf + in->len, p, n);
    in->len += n;
    return true;
}

/* Finds the last complete frame of `kind`; NULL when none. */
static const char *last_frame(const inbox *in, char kind, size_t *len)
{
    const char *found = NULL;
    size_t at = 0;
    while (at + 1 + sizeof(uint64_t) <= in->len) {
        uint64_t n;
        memcpy(&n, in->buf + at + 1, sizeof n);
        size_t body = at + 1 + sizeof n;
        if (n > in->len - body)
            break;
        if (in->buf[at] == kind) {
            found = in->buf + body;
            *len = (size_t)n;
        }
        at = body + (size_t)n;
    }
    return found;
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
    case SIGPIPE: return "SIGPIPE";
    case SIGTRAP: return "SIGTRAP";
    case SIGSYS: return "SIGSYS";
    case SIGXCPU: return "SIGXCPU";
    default: return NULL;
    }
}

/* Runs point `index` in a child and records what came of it. */
static int run_isolated(const bl_isolate_hooks *h, bl_sweep *sw, bl_ctx *ctx, size_t index)
{
    int fds[2];
    if (pipe(fds) != 0)
        return bl_error(ctx, BL_EIO, "isolated run: pipe: %s", strerror(errno));
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return bl_error(ctx, BL_EIO, "isolated run: fork: %s", strerror(e));
    }
    if (pid == 0) {
        close(fds[0]);
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(71);
#else
        (void)parent;
#endif
        child_main(h, sw, ctx, index, fds[1]);
    }
    close(fds[1]);
    setpgid(pid, pid); /* as the child does: no race on who is first */
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    if (h->supervising)
        *h->supervising = 1;

    double timeout = h->timeout > 0 && isfinite(h->timeout) ? h->timeout : 0;
    double grace = h->grace > 0 ? h->grace : 2.0;
    double start = bl__now(), term_at = 0;
    bool timed_out = false, forwarded = false, hard = false, killed = false, eof = false;
    bool nomem = false;
    int status = 0;
    bool reaped = false;
    inbox in = {0};
    for (;;) {
        if (!eof) {
            struct pollfd pfd = {fds[0], POLLIN, 0};
            int pr = poll(&pfd, 1, 50);
            if (pr > 0) {
                char chunk[65536];
                for (;;) {
                    ssize_t n = read(fds[0], chunk, sizeof chunk);
                    if (n > 0) {
                        nomem = nomem || !inbox_add(&in, chunk, (size_t)n);
                        continue;
                    }
                    if (n == 0)
                        eof = true;
                    else if (errno == EINTR)
                        continue;
                    break;
                }
            }
        } else {
            bl__sleep_us(10000);
        }
        if (!reaped) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid)
                reaped = true;
            else if (w < 0 && errno != EINTR) {
                reaped = true;
                status = 0;
            }
        }
        if (reaped)
            break; /* drained below; a grandchild may hold the pipe open: do not wait for EOF */
        double now = bl__now();
        if (!hard && h->interrupt && *h->interrupt >= 2) {
            kill(pid, SIGKILL);
            hard = killed = true;
        } else if (!forwarded && !timed_out && h->interrupt && *h->interrupt) {
            kill(pid, SIGTERM);
            forwarded = true;
            term_at = now;
        }
        if (timeout > 0 && !timed_out && !forwarded && now - start > timeout) {
            kill(pid, SIGTERM);
            timed_out = true;
            term_at = now;
        }
        if ((timed_out || forwarded) && !killed && now - term_at > grace) {
            kill(pid, SIGKILL);
            killed = true;
            hard = forwarded; /* a forwarded stop that hangs: as a second signal */
        }
    }
    /* Whatever the child wrote before it was reaped is in the pipe still. */
    for (;;) {
        char chunk[65536];
        ssize_t n = read(fds[0], chunk, sizeof chunk);
        if (n > 0) {
            nomem = nomem || !inbox_add(&in, chunk, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
    close(fds[0]);
    if (h->supervising)
        *h->supervising = 0;
    if (nomem) {
        free(in.buf);
        return bl_error(ctx, BL_ENOMEM, "isolated run: out of memory reading the result");
    }

    bl_sweep_point p = {.status = BL_SWEEP_FAILED, .time_to_target = NAN, .val_loss = NAN,
                        .score = NAN};
    size_t rlen = 0;
    const char *r = last_frame(&in, FRAME_RESULT, &rlen);
    int rc;
    bool exited_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (r && rlen >= sizeof(result_head) && exited_ok && !timed_out) {
        result_head head;
        memcpy(&head, r, sizeof head);
        size_t msg_len = head.msg_len <= rlen - sizeof head ? head.msg_len : rlen - sizeof head;
        char *msg = malloc(msg_len + 1);
        if (!msg) {
            free(in.buf);
            return bl_error(ctx, BL_ENOMEM, "isolated run: out of memory");
        }
        memcpy(msg, r + sizeof head, msg_len);
        msg[msg_len] = '\0';
        p = head.point;
        rc = head.rc;
        if (rc != BL_OK)
            bl_error(ctx, rc, "%s", msg);
        if (h->result)
            rc = h->result(h->user, ctx, index, head.rc, msg, r + sizeof head + msg_len,
                           rlen - sizeof head - msg_len, &p);
        free(msg);
    } else {
        bl_isolate_loss loss;
        memset(&loss, 0, sizeof loss);
        loss.pid = (long)pid;
        loss.exit_status = -1;
        loss.note = last_frame(&in, FRAME_NOTE, &loss.note_len);
        if (!loss.note)
            loss.note_len = 0;
        int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
        loss.signal = sig;
        if (sig) {
            const char *name = signal_name(sig);
            if (name)
                snprintf(loss.signal_name, sizeof loss.signal_name, "%s", name);
            else
                snprintf(loss.signal_name, sizeof loss.signal_name, "signal %d", sig);
        } else if (WIFEXITED(status)) {
            loss.exit_status = WEXITSTATUS(status);
        }
        loss.stopped_by = hard ? "interrupt" : timed_out ? "timeout" : sig ? "signal" : "exit";
        if (hard) {
            loss.status = BL_RUN_INTERRUPTED;
            snprintf(loss.what, sizeof loss.what,
                     "stopped by a second stop signal: the process was killed");
        } else if (timed_out) {
            loss.status = BL_RUN_TIMED_OUT;
            loss.limit = timeout;
            snprintf(loss.what, sizeof loss.what, "ran past its timeout of %g s and was %s",
                     timeout, sig == SIGKILL ? "killed (SIGKILL)" : "stopped");
        } else if (sig) {
            loss.status = BL_RUN_CRASHED;
            snprintf(loss.what, sizeof loss.what, "the run's process was killed by %s (%s)",
                     loss.signal_name, strsignal(sig));
        } else {
            loss.status = BL_RUN_CRASHED;
            snprintf(loss.what, sizeof loss.what,
                     "the run's process exited with status %d without a result",
                     loss.exit_status);
        }
        rc = h->lost(h->user, ctx, index, &loss, &p);
        if (rc == BL_OK && hard)
            rc = bl_error(ctx, BL_EINTERRUPTED, "interrupted");
    }
    free(in.buf);
    if (rc == BL_OK)
        rc = bl_sweep_record(sw, ctx, index, &p);
    return rc;
}

static int isolated_execute(const bl_sweep_executor *self, bl_sweep *sw, bl_ctx *ctx)
{
    const bl_isolate_hooks *h = self->state;
    if (!h || !h->lost)
        return bl_error(ctx, BL_EINVAL, "isolated sweep: the lost hook is required");
    size_t i;
    while (bl_sweep_next_index(sw, &i)) {
        if (h->interrupt && *h->interrupt)
            return bl_error(ctx, BL_EINTERRUPTED, "interrupted");
        int rc = run_isolated(h, sw, ctx, i);
        if (rc != BL_OK)
            return rc;
    }
    return BL_OK;
}

void bl_sweep_isolated(const bl_isolate_hooks *hooks, bl_sweep_executor *out)
{
    *out = (bl_sweep_executor){"isolated", isolated_execute, (void *)hooks};
}
