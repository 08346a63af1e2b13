// The op harness's cases: full, arange, linspace, eye and the random ops.
#include "cases.h"

namespace op_cases {

void zero_input_cases() {
    g_cases.clear();
    add({NB_OP_FILL, "full", {}, {{}}, ALL,
         [](const Tensors &) { return nb_full(2, Shape{3, 4}.data(), 2.5, g_dtype, g_device); },
         [](const std::vector<Host> &) { return Host({3, 4}, std::vector<double>(12, 2.5)); }, false});
    add({NB_OP_FILL, "full_dense_tail", {}, {{}}, ALL,
         [](const Tensors &) { return nb_full(1, Shape{1003}.data(), 3, g_dtype, g_device); },
         [](const std::vector<Host> &) { return Host({1003}, std::vector<double>(1003, 3)); }, false});
    add({NB_OP_FILL, "full_rounded", {}, {{}}, FLOATS,
         [](const Tensors &) { return nb_full(2, Shape{5, 7}.data(), 0.1, g_dtype, g_device); },
         [](const std::vector<Host> &) { return Host({5, 7}, std::vector<double>(35, 0.1)); }, false});
    add({NB_OP_FILL, "zeros_ones", {}, {{}}, ALL,
         [](const Tensors &) {
             T z(nb_zeros(1, Shape{3}.data(), g_dtype, g_device));
             T o(nb_ones(1, Shape{2}.data(), g_dtype, g_device));
             const nb_tensor *both[2] = {z, o};
             return nb_cat(2, both, 0);
         },
         [](const std::vector<Host> &) { return Host({5}, {0, 0, 0, 1, 1}); }, false});
    add({NB_OP_ARANGE, "arange_half_steps", {}, {{}}, FLOATS,
         [](const Tensors &) { return nb_arange(-1, 3.5, 0.5, g_dtype, g_device); },
         [](const std::vector<Host> &) {
             Host h({9});
             for (int i = 0; i < 9; i++) h.v[i] = -1 + 0.5 * i;
             return h;
         },
         false});
    add({NB_OP_ARANGE, "arange_down", {}, {{}}, SIGNED,
         [](const Tensors &) { return nb_arange(7, -3, -2, g_dtype, g_device); },
         [](const std::vector<Host> &) { return Host({5}, {7, 5, 3, 1, -1}); }, false});
    add({NB_OP_LINSPACE, "linspace", {}, {{}}, FLOATS,
         [](const Tensors &) { return nb_linspace(-1, 2, 7, g_dtype, g_device); },
         [](const std::vector<Host> &) {
             Host h({7});
             for (int i = 0; i < 7; i++) h.v[i] = -1 + 3.0 * i / 6;
             return h;
         },
         false});
    for (auto nm : std::vector<std::pair<int64_t, int64_t>>{{3, 4}, {4, 2}, {1, 1}})
        add({NB_OP_EYE, "eye_" + std::to_string(nm.first) + "x" + std::to_string(nm.second), {},
             {{}}, ALL, [nm](const Tensors &) { return nb_eye(nm.first, nm.second, g_dtype, g_device); },
             [nm](const std::vector<Host> &) {
                 Host h({nm.first, nm.second});
                 for (int64_t i = 0; i < std::min(nm.first, nm.second); i++) h.v[i * nm.second + i] = 1;
                 return h;
             },
             false});
    const uint64_t seed = 0x1234abcd5678ull;
    auto with_gen = [seed](std::function<nb_tensor *(nb_generator *)> f) {
        return [seed, f](const Tensors &) {
            nb_generator *g = nb_generator_create(seed);
            nb_tensor *t = f(g);
            nb_generator_free(g);
            return t;
        };
    };
    add({NB_OP_UNIFORM, "uniform", {}, {{}}, FLOATS,
         with_gen([](nb_generator *g) { return nb_uniform(2, Shape{3, 5}.data(), -2, 3, g_dtype, g_device, g); }),
         [seed](const std::vector<Host> &) {
             Host h({3, 5});
             for (int i = 0; i < 15; i++) h.v[i] = philox_uniform(seed, i, -2, 3);
             return h;
         },
         false});
    add({NB_OP_NORMAL, "normal", {}, {{}}, FLOATS,
         with_gen([](nb_generator *g) { return nb_normal(2, Shape{4, 3}.data(), 1, 2, g_dtype, g_device, g); }),
         [seed](const std::vector<Host> &) {
             Host h({4, 3});
             for (int i = 0; i < 12; i++) {
                 auto w = PhiloxRef::block(seed, (uint64_t)i);
                 double u1 = 1 - PhiloxRef::unit(w[0], w[1]), u2 = PhiloxRef::unit(w[2], w[3]);
                 h.v[i] = 1 + 2 * std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
             }
             return h;
         },
         false, 2});
    add({NB_OP_BERNOULLI, "bernoulli", {}, {{}}, ALL,
         with_gen([](nb_generator *g) { return nb_bernoulli(2, Shape{5, 6}.data(), 0.3, g_dtype, g_device, g); }),
         [seed](const std::vector<Host> &) {
             Host h({5, 6});
             for (int i = 0; i < 30; i++) h.v[i] = philox_uniform(seed, i, 0, 1) < 0.3;
             return h;
         },
         false});
    add({NB_OP_RANDINT, "randint", {}, {{}}, {NB_I32, NB_I64, NB_F32, NB_F64},
         with_gen([](nb_generator *g) { return nb_randint(-3, 9, 2, Shape{4, 4}.data(), g_dtype, g_device, g); }),
         [seed](const std::vector<Host> &) {
             Host h({4, 4});
             for (int i = 0; i < 16; i++) {
                 auto w = PhiloxRef::block(seed, (uint64_t)i);
                 h.v[i] = -3 + (double)((((uint64_t)w[0] << 32) | w[1]) % 12);
             }
             return h;
         },
         false});
    add({NB_OP_RANDPERM, "randperm", {}, {{}}, {NB_I64, NB_I32, NB_F32},
         with_gen([](nb_generator *g) { return nb_randperm(10, g_dtype, g_device, g); }),
         [seed](const std::vector<Host> &) {
             std::vector<std::pair<uint64_t, int>> keyed;
             for (int i = 0; i < 10; i++) {
                 auto w = PhiloxRef::block(seed, (uint64_t)i);
                 keyed.push_back({((uint64_t)w[0] << 32) | w[1], i});
             }
             std::sort(keyed.begin(), keyed.end());
             Host h({10});
             for (int i = 0; i < 10; i++) h.v[i] = keyed[i].second;
             return h;
         },
         false});
}

} // namespace op_cases
