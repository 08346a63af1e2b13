// Allocation faults: each scenario (a layer, the GPT forward and backward,
// optimizer steps, the IDX reader) runs once to count nabla's heap
// allocations, then once per allocation with that one failing (Note
// [allocation faults] in src/core/cpu_alloc.c). Every run must return (a
// status, never a crash), give back every byte of tensor memory, and leave
// the library working: a clean run afterwards succeeds. A run that reports
// success despite its fault (a cache that did without memory) must give the
// clean run's answer, bit for bit. Under the sanitizer build leak checking
// covers the rest.
#include <cstdio>
#include <functional>

#include "harness.h"

extern "C" void nb__fail_allocation(int64_t k);
extern "C" int64_t nb__allocations_seen(void);

namespace {

size_t tensor_bytes() {
    nb_cpu_memory_stats stats;
    nb_cpu_memory_stats_get(&stats);
    return stats.allocated;
}

// A scenario returns its status and, on success, a number summing its result.
using Scenario = std::function<nb_status(double *result)>;

void fail_each_allocation(const char *what, const Scenario &scenario) {
    size_t before = tensor_bytes();
    double clean = 0, result = 0;
    nb__fail_allocation(0);
    ASSERT_EQ(scenario(&clean), NB_OK) << what << ": " << nb_last_error();
    int64_t total = nb__allocations_seen();
    ASSERT_GT(total, 0) << what;
    int errors = 0;
    for (int64_t k = 1; k <= total; k++) {
        nb_clear_error();
        nb__fail_allocation(k);
        nb_status status = scenario(&result);
        nb__fail_allocation(0);
        if (status != NB_OK) {
            errors++;
            EXPECT_STRNE(nb_last_error(), "") << what << ", allocation " << k << " failing";
        } else {
            EXPECT_EQ(result, clean) << what << ": allocation " << k << " failed, the run said it "
                                     << "succeeded, and its answer differs";
        }
        ASSERT_EQ(tensor_bytes(), before) << what << ": tensor memory left after allocation " << k
                                          << " failed (" << nb_last_error() << ")";
    }
    EXPECT_EQ(scenario(&result), NB_OK) << what << " after the faults: " << nb_last_error();
    EXPECT_EQ(result, clean) << what << " after the faults";
    printf("[ faults   ] %s: %lld allocations, each failed in turn; %d runs returned an error, the "
           "rest recovered; none crashed or leaked\n", what, (long long)total, errors);
}

nb_status status_of(bool ok) { return ok ? NB_OK : (nb_last_status() != NB_OK ? nb_last_status() : NB_ERR_INTERNAL); }

// The sum of t's elements into *result (any dtype, any device).
nb_status sum_of(const nb_tensor *t, double *result) {
    T total(nb_sum(t, 0, nullptr, false));
    T wide(total.t ? nb_cast(total, NB_F64) : nullptr);
    return wide.t ? nb_item(wide, result) : status_of(false);
}

// The module's first parameter (the GPT's token embedding).
nb_tensor *first_parameter(const nb_module *m) {
    nb_named_tensor named[1];
    return nb_module_parameters(m, named, 1) > 0 ? named[0].tensor : nullptr;
}

// Forward and backward of a module on x; *result sums the loss and every
// parameter's gradient.
nb_status train_once(nb_module *m, const nb_tensor *x, double *result) {
    if (!m) return status_of(false);
    T y(nb_module_forward(m, x));
    T loss(y.t ? nb_sum(y, 0, nullptr, false) : nullptr);
    nb_status status = loss.t ? nb_backward(loss, nullptr, false) : status_of(false);
    if (status == NB_OK) status = sum_of(loss, result);
    nb_named_tensor named[16];
    int n = nb_module_parameters(m, named, 16);
    for (int i = 0; i < n; i++) {
        double g = 0;
        T grad(nb_grad(named[i].tensor));
        if (status == NB_OK && grad.t) status = sum_of(grad, &g);
        *result += g;
        nb_zero_grad(named[i].tensor);
    }
    return status;
}

TEST(Faults, ConvBlockForwardAndBackward) {
    fail_each_allocation("conv block", [](double *result) {
        nb_generator *gen = nb_generator_create(1);
        if (!gen) return status_of(false);
        nb_module *m = nb_nn_depthwise_separable_conv2d(3, 4, 3, 1, NB_ACT_RELU6, NB_F32, nb_cpu(), gen);
        T x(nb_normal(4, Shape{2, 3, 6, 6}.data(), 0, 1, NB_F32, nb_cpu(), gen));
        nb_status status = x.t ? train_once(m, x, result) : status_of(false);
        nb_module_free(m);
        nb_generator_free(gen);
        return status;
    });
}

TEST(Faults, GptForwardAndBackward) {
    fail_each_allocation("GPT", [](double *result) {
        nb_gpt_config config = small_gpt_config(7, 4, true);
        nb_generator *gen = nb_generator_create(2);
        if (!gen) return status_of(false);
        nb_module *gpt = nb_nn_gpt(&config, NB_F32, nb_cpu(), gen);
        T tokens(nb_randint(0, 7, 2, Shape{1, 4}.data(), NB_I64, nb_cpu(), gen));
        T targets(nb_randint(0, 7, 2, Shape{1, 4}.data(), NB_I64, nb_cpu(), gen));
        nb_status status = status_of(gpt && tokens.t && targets.t);
        if (status == NB_OK) {
            T loss(nb_gpt_loss(gpt, tokens, targets));
            status = loss.t ? nb_backward(loss, nullptr, false) : status_of(false);
            if (status == NB_OK) status = sum_of(loss, result);
            T wte_grad(nb_grad(first_parameter(gpt)));
            double g = 0;
            if (status == NB_OK) status = wte_grad.t ? sum_of(wte_grad, &g) : status_of(false);
            *result += g;
        }
        nb_module_free(gpt);
        nb_generator_free(gen);
        return status;
    });
}

TEST(Faults, OptimizerSteps) {
    fail_each_allocation("AdamW with bf16 master weights and SGD", [](double *result) {
        T w(nb_ones(2, Shape{3, 4}.data(), NB_BF16, nb_cpu()));
        T b(nb_ones(1, Shape{4}.data(), NB_F32, nb_cpu()));
        if (!w.t || !b.t) return status_of(false);
        nb_set_requires_grad(w, true);
        nb_set_requires_grad(b, true);
        nb_tensor *params[2] = {w, b};
        nb_status status = NB_OK;
        for (int kind = 0; kind < 2 && status == NB_OK; kind++) {
            nb_optimizer *opt = kind ? nb_sgd_create(params, 2, 0.1, 0.9, 0.01, true)
                                     : nb_adamw_create(params, 2, 1e-3, 0.9, 0.999, 1e-8, 0.01);
            for (int step = 0; step < 2 && opt && status == NB_OK; step++) {
                nb_optimizer_zero_grad(opt);
                T y(nb_add(w, b));
                T loss(y.t ? nb_sum(y, 0, nullptr, false) : nullptr);
                status = loss.t ? nb_backward(loss, nullptr, false) : status_of(false);
                if (status == NB_OK) status = nb_optimizer_step(opt);
            }
            if (!opt) status = status_of(false);
            nb_optimizer_zero_grad(opt);
            nb_optimizer_free(opt);
        }
        double bias_sum = 0;
        if (status == NB_OK) status = sum_of(w, result);
        if (status == NB_OK) status = sum_of(b, &bias_sum);
        *result += bias_sum;
        return status;
    });
}

TEST(Faults, IdxReader) {
    std::string path = ::testing::TempDir() + "nabla_faults.idx";
    FILE *f = fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    const unsigned char bytes[] = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6};
    fwrite(bytes, 1, sizeof bytes, f);
    fclose(f);
    fail_each_allocation("IDX reader", [&path](double *result) {
        nb_tensor *t = nullptr;
        nb_status status = nb_idx_read(path.c_str(), &t);
        if (status == NB_OK) status = sum_of(t, result);
        nb_release(t);
        return status;
    });
    remove(path.c_str());
}

#ifdef NABLA_TEST_CJSON
// A checkpoint of a model with a bf16 AdamW step behind it (state, master
// copies), saved and loaded into fresh objects: a failed allocation must
// fail the save (the old file stays whole) or the load, never crash, and a
// run that succeeds must restore the same parameters.
TEST(Faults, CheckpointSaveAndLoad) {
    std::string path = ::testing::TempDir() + "nabla_faults.safetensors";
    fail_each_allocation("checkpoint", [&path](double *result) {
        nb_generator *gen = nb_generator_create(3);
        nb_module *m = gen ? nb_nn_linear(3, 2, true, NB_BF16, nb_cpu(), gen) : nullptr;
        nb_module *fresh = gen ? nb_nn_linear(3, 2, true, NB_BF16, nb_cpu(), gen) : nullptr;
        nb_status status = status_of(m && fresh);
        nb_named_tensor named[2], other[2];
        nb_optimizer *opt = nullptr, *opt2 = nullptr;
        if (status == NB_OK) {
            nb_module_parameters(m, named, 2);
            nb_module_parameters(fresh, other, 2);
            nb_tensor *params[2] = {named[0].tensor, named[1].tensor}, *params2[2] = {other[0].tensor, other[1].tensor};
            opt = nb_adamw_create(params, 2, 0.1, 0.9, 0.999, 1e-8, 0.01);
            opt2 = nb_adamw_create(params2, 2, 0.1, 0.9, 0.999, 1e-8, 0.01);
            status = status_of(opt && opt2);
        }
        if (status == NB_OK) {
            T x(nb_ones(2, Shape{4, 3}.data(), NB_BF16, nb_cpu()));
            T y(x.t ? nb_module_forward(m, x) : nullptr);
            T loss(y.t ? nb_sum(y, 0, nullptr, false) : nullptr);
            status = loss.t ? nb_backward(loss, nullptr, false) : status_of(false);
            if (status == NB_OK) status = nb_optimizer_step(opt);
        }
        nb_checkpoint c = {}, d = {};
        c.model = m, c.optimizers = &opt, c.n_optimizers = 1, c.step = 1;
        d.model = fresh, d.optimizers = &opt2, d.n_optimizers = 1;
        if (status == NB_OK) status = nb_checkpoint_save(path.c_str(), &c);
        if (status == NB_OK) status = nb_checkpoint_load(path.c_str(), &d);
        *result = 0;
        for (int i = 0; i < 2 && status == NB_OK; i++) {
            double a = 0, b = 0;
            status = sum_of(named[i].tensor, &a);
            if (status == NB_OK) status = sum_of(other[i].tensor, &b);
            *result += a + 1000 * (a == b);
        }
        nb_optimizer_free(opt);
        nb_optimizer_free(opt2);
        nb_module_free(m);
        nb_module_free(fresh);
        nb_generator_free(gen);
        return status;
    });
    remove(path.c_str());
}
#endif

} // namespace
