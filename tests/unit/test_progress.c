/* Progress lines (train.h, bl_progress_printer; issue 14 found 1): a live line is cut to the
 * width (whole characters, never past width − 1 columns, the most important fields first),
 * the loss shown is smoothed, a sweep's run shows "run i/n", and the final line shows the
 * status and the final evaluation. */
#include <math.h>
#include <string.h>

#include "testutil.h"

static int columns(const char *s)
{
    int c = 0;
    for (; *s; s++)
        c += ((unsigned char)*s & 0xC0) != 0x80;
    return c;
}

static bl_progress_printer printer(void)
{
    bl_progress_printer p;
    memset(&p, 0, sizeof p);
    p.label = "réseau-étoilé-with-a-very-long-label batch=32";
    p.live = true;
    p.width = 80;
    p.run_index = 3;
    p.run_count = 21;
    p.state.step = 495;
    p.state.batch = 32;
    p.state.samples = 495 * 32;
    p.state.epoch_progress = 0.29;
    p.state.wall = 2.0;
    p.last.val_accuracy = 0.7978;
    p.last.val_loss = 0.55;
    p.last.train_accuracy = NAN;
    p.have_last = true;
    return p;
}

static void lines_fit_the_width(void **state)
{
    (void)state;
    bl_progress_printer p = printer();
    char buf[1024];
    for (int width = 10; width <= 200; width += 7) {
        bl_progress_format(&p, width, NULL, buf, sizeof buf);
        if (columns(buf) > width - 1)
            fail_msg("width %d: %d columns: %s", width, columns(buf), buf);
        assert_null(strchr(buf, '\n'));
        assert_null(strchr(buf, '\r'));
        /* whole UTF-8 characters only */
        size_t n = strlen(buf);
        assert_true(n == 0 || ((unsigned char)buf[n - 1] & 0xC0) != 0xC0);
    }
    bl_progress_format(&p, 80, NULL, buf, sizeof buf);
    /* the label's middle gives way: its start and its end (what differs in a sweep) stay */
    assert_true(strncmp(buf, "réseau-", strlen("réseau-")) == 0);
    assert_non_null(strstr(buf, "...el batch=32 run 3/21"));
    assert_non_null(strstr(buf, "val_acc 0.7978"));
    bl_progress_format(&p, 0, NULL, buf, sizeof buf);   /* no limit: every field, whole label */
    assert_non_null(strstr(buf, p.label));
    assert_non_null(strstr(buf, "samples/s"));
}

static void loss_is_smoothed(void **state)
{
    (void)state;
    bl_progress_printer p = printer();
    p.live = false;
    p.interval = 1e9;     /* one plain line, at the first step */
    bl_train_state s = p.state;
    for (int i = 0; i < 100; i++)
        bl_progress_print(&p, &s, 1.0, 0);
    bl_progress_print(&p, &s, 0.0, 0);  /* one step's loss of 0 barely moves the average */
    char buf[1024];
    bl_progress_format(&p, 0, NULL, buf, sizeof buf);
    assert_non_null(strstr(buf, "loss 0.9608"));   /* 1 − 2/51 */
}

static void final_line_shows_the_final_evaluation(void **state)
{
    (void)state;
    bl_progress_printer p = printer();
    bl_eval_point points[2] = {{.step = 400, .val_accuracy = 0.8582, .val_loss = 0.4},
                               {.step = 495, .val_accuracy = 0.8698, .val_loss = 0.38}};
    for (int i = 0; i < 2; i++) {
        points[i].train_loss = points[i].train_accuracy = points[i].gns = NAN;
        points[i].batch = 32;
    }
    bl_run_result r;
    memset(&r, 0, sizeof r);
    r.status = BL_RUN_COMPLETED;
    strcpy(r.stopped_by, "target");
    r.final = points[1];
    r.test_accuracy = 0.8611;
    r.epochs = 0.29;
    r.steps = 495;
    r.history = points;
    r.history_count = 2;
    p.last = points[0];            /* the line showed the point before */
    char buf[1024];
    bl_progress_format(&p, 80, &r, buf, sizeof buf);
    assert_non_null(strstr(buf, "run 3/21 completed (target) val_acc 0.8698"));
    bl_progress_format(&p, 120, &r, buf, sizeof buf);
    assert_non_null(strstr(buf, "run 3/21 completed (target) val_acc 0.8698 test_acc 0.8611"));
    assert_null(strstr(buf, "0.8582"));
    r.status = BL_RUN_FAILED;
    strcpy(r.stopped_by, "error");
    bl_progress_format(&p, 80, &r, buf, sizeof buf);
    assert_non_null(strstr(buf, "run 3/21 failed val_acc"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lines_fit_the_width),
        cmocka_unit_test(loss_is_smoothed),
        cmocka_unit_test(final_line_shows_the_final_evaluation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
