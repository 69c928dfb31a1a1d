/* Shared by the optimizer tests (test_optim.c, test_optim_state.c): a tiny net on the CPU
 * device, fixed weights and gradients, and a double-precision reference of every rule written
 * from optim.h (and torch.optim). optimutil.c is linked into each of them. */
#ifndef BATCHLAB_OPTIMUTIL_H
#define BATCHLAB_OPTIMUTIL_H

#include "testutil.h"

/* The tiny net: one linear layer 3 → 2 with bias. Flat block: weight [2×3] (decay) at 0, then
 * bias [2] (no decay) at 6. */
#define NP 8
#define W_END 6

extern const double W0[NP];       /* initial weights */
extern const double G[3][NP];     /* the gradients of three steps */
extern const double LR_FACTOR[3]; /* the lr changes between steps */

typedef struct fixture {
    bl_test_env *env;
    bl_net *net;
} fixture;

/* cmocka per-test setup/teardown: *state is a fixture with the tiny net built. */
int setup(void **state);
int teardown(void **state);

/* The net's parameters and gradients, from and to doubles. */
void set_params(fixture *fx, const double *w);
void set_grads(fixture *fx, const double *g);
void get_params(fixture *fx, double *w);
void get_grads(fixture *fx, double *g);

/* Fails unless |got - want| <= tol·(1 + |want|) elementwise. */
void assert_close(const double *got, const double *want, size_t n, double tol, const char *what);

/* The reference: double precision, one parameter at a time. */
typedef struct ref {
    bl_optim_config c;
    double w[NP], buf[NP], m[NP], v[NP];
    int t;
    double last_norm;
} ref;

void ref_init(ref *r, const bl_optim_config *c);
void ref_step(ref *r, const double *g_in, double lr);

/* Runs 3 steps of `cfg` on the test net and compares with the reference after each. */
void check_rule(fixture *fx, const bl_optim_config *cfg, double lr, double tol);

#endif
