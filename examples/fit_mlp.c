/* Fits a two-layer MLP to y = sin(3 x0) * cos(2 x1) + x2 x3 on synthetic data
 * with autograd and plain SGD, printing the loss as it falls.
 *
 *   fit_mlp [--steps N] [--lr RATE] [--seed S]
 */
#define EXAMPLE_NAME "fit_mlp"
#include "example.h"

#include <string.h>

enum { SAMPLES = 512, FEATURES = 4, HIDDEN = 64 };

/* The target function, computed with nabla ops on the inputs' columns. */
static nb_tensor *target(const nb_tensor *x) {
    nb_tensor *cols[FEATURES];
    int n;
    CHECK(nb_split(x, 1, 1, FEATURES, cols, &n) == NB_OK);
    nb_tensor *three = nb_scalar(3, NB_F32, nb_cpu()), *two = nb_scalar(2, NB_F32, nb_cpu());
    nb_tensor *a = nb_mul(cols[0], three), *b = nb_mul(cols[1], two);
    nb_tensor *sa = nb_sin(a), *cb = nb_cos(b), *wave = nb_mul(sa, cb);
    nb_tensor *prod = nb_mul(cols[2], cols[3]);
    nb_tensor *y = nb_add(wave, prod);
    CHECK(y);
    nb_tensor *temps[] = {three, two, a, b, sa, cb, wave, prod, cols[0], cols[1], cols[2], cols[3]};
    for (size_t i = 0; i < sizeof temps / sizeof temps[0]; i++) nb_release(temps[i]);
    return y;
}

/* He-style initialization: normal with std sqrt(2 / fan_in). */
static nb_tensor *parameter(int64_t rows, int64_t cols, double std, nb_generator *gen) {
    int64_t shape[2] = {rows, cols};
    nb_tensor *p = cols > 0 ? nb_normal(2, shape, 0, std, NB_F32, nb_cpu(), gen)
                            : nb_zeros(1, shape, NB_F32, nb_cpu());
    CHECK(p && nb_set_requires_grad(p, true) == NB_OK);
    return p;
}

/* p -= lr * grad, outside the graph. */
static void sgd_step(nb_tensor *p, nb_tensor *lr) {
    nb_tensor *g = nb_grad(p);
    CHECK(g);
    nb_tensor *step = nb_mul(g, lr);
    nb_tensor *updated = nb_sub(p, step);
    CHECK(updated && nb_copy_(p, updated) == NB_OK);
    nb_release(updated);
    nb_release(step);
    nb_release(g);
    nb_zero_grad(p);
}

int main(int argc, char **argv) {
    int steps = 500;
    double lr = 0.1;
    unsigned long long seed = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--lr") && i + 1 < argc) lr = atof(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else {
            printf("usage: fit_mlp [--steps N] [--lr RATE] [--seed S]\n"
                   "Fits a %d-%d-1 tanh MLP to a synthetic target with SGD (defaults: 500 steps,"
                   " lr 0.1, seed 0).\n", FEATURES, HIDDEN);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    nb_generator *gen = nb_generator_create(seed);
    CHECK(gen);
    int64_t data_shape[2] = {SAMPLES, FEATURES};
    nb_tensor *x = nb_uniform(2, data_shape, -1, 1, NB_F32, nb_cpu(), gen);
    CHECK(x);
    nb_tensor *y = target(x);
    nb_tensor *w1 = parameter(FEATURES, HIDDEN, 1.0, gen), *b1 = parameter(HIDDEN, 0, 0, gen);
    nb_tensor *w2 = parameter(HIDDEN, 1, 0.18, gen), *b2 = parameter(1, 0, 0, gen);
    nb_tensor *rate = nb_scalar(lr, NB_F32, nb_cpu());
    printf("fitting a %d-%d-1 MLP on %d samples, lr %g\n", FEATURES, HIDDEN, SAMPLES, lr);
    double first = 0, loss_value = 0;
    for (int step = 0; step <= steps; step++) {
        nb_tensor *h_lin = nb_matmul(x, w1), *h_pre = nb_add(h_lin, b1), *h = nb_tanh(h_pre);
        nb_tensor *o_lin = nb_matmul(h, w2), *out = nb_add(o_lin, b2);
        nb_tensor *diff = nb_sub(out, y), *sq = nb_mul(diff, diff);
        nb_tensor *loss = nb_mean(sq, 0, NULL, false);
        CHECK(loss && nb_item(loss, &loss_value) == NB_OK);
        if (step == 0) first = loss_value;
        if (step % (steps / 10 ? steps / 10 : 1) == 0) printf("step %4d  loss %.6f\n", step, loss_value);
        CHECK(nb_backward(loss, NULL, false) == NB_OK);
        bool was = nb_set_grad_enabled(false);
        nb_tensor *params[] = {w1, b1, w2, b2};
        for (int i = 0; i < 4; i++) sgd_step(params[i], rate);
        nb_set_grad_enabled(was);
        nb_tensor *temps[] = {h_lin, h_pre, h, o_lin, out, diff, sq, loss};
        for (int i = 0; i < 8; i++) nb_release(temps[i]);
    }
    printf("loss fell from %.6f to %.6f\n", first, loss_value);
    nb_tensor *all[] = {x, y, w1, b1, w2, b2, rate};
    for (int i = 0; i < 7; i++) nb_release(all[i]);
    nb_generator_free(gen);
    return loss_value < first ? 0 : 1;
}
