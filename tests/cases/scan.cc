// The op harness's cases: cumsum, cumprod and logcumsumexp along each dim,
// against running folds in double.
#include "cases.h"

namespace op_cases {

namespace {

// y_i = fold(y_{i-1}, x_i) along dim, y_0 = x_0.
Host running_ref(const Host &x, int dim, const std::function<double(double, double)> &fold) {
    int nd = (int)x.shape.size();
    if (nd == 0) return x;
    dim = (dim + nd) % nd;
    Host out(x.shape);
    for (int64_t i = 0; i < x.numel(); i++) {
        auto idx = x.unravel(i);
        if (idx[dim] == 0) {
            out.v[i] = x.v[i];
            continue;
        }
        auto prev = idx;
        prev[dim]--;
        out.v[i] = fold(out.at(prev), x.v[i]);
    }
    return out;
}

} // namespace

void scan_cases() {
    const std::vector<std::vector<Shape>> shapes = {{{7}}, {{3, 5}}, {{2, 3, 4}}, {{}}, {{1, 300}}, {{0, 3}}};
    auto log_add = [](double a, double b) { return std::max(a, b) + std::log1p(std::exp(-std::fabs(a - b))); };
    struct Scan {
        nb_op op;
        nb_tensor *(*fn)(const nb_tensor *, int);
        std::function<double(double, double)> fold;
        Input in;
        std::vector<nb_dtype> dtypes;
    };
    const std::vector<Scan> scans = {
        {NB_OP_CUMSUM, nb_cumsum, std::plus<double>(), F(-2, 2), ALL},
        {NB_OP_CUMPROD, nb_cumprod, std::multiplies<double>(), F(0.5, 1.5), ALL},
        {NB_OP_LOGCUMSUMEXP, nb_logcumsumexp, log_add, F(-3, 3), FLOATS},
    };
    for (const Scan &s : scans)
        for (int dim : {0, -1}) {
            std::vector<std::vector<Shape>> these = shapes;
            if (s.op == NB_OP_CUMPROD) these.back() = {{2, 40}}; // products of 300 drift past f16
            add({s.op, std::string(nb_op_name(s.op)) + "_dim" + std::to_string(dim), {s.in}, these, s.dtypes,
                 [s, dim](const Tensors &t) { return s.fn(t[0], dim); },
                 [s, dim](const std::vector<Host> &h) { return running_ref(h[0], dim, s.fold); }, true});
        }
    for (const Scan &s : scans)
        add({s.op, std::string(nb_op_name(s.op)) + "_middle_dim", {s.in}, {{{3, 4, 5}}, {{2, 9, 1}}}, s.dtypes,
             [s](const Tensors &t) { return s.fn(t[0], 1); },
             [s](const std::vector<Host> &h) { return running_ref(h[0], 1, s.fold); }, true});
    // Zeros in cumprod: the gradient without division (one zero, two zeros).
    add({NB_OP_CUMPROD, "cumprod_zeros", {F(-2, 2)}, {{{6}}}, {NB_F32, NB_F64},
         [](const Tensors &t) {
             T mask(make_tensor(Host({6}, {1, 0, 1, 1, 0, 1}), nb_dtype_of(t[0])));
             T on(nb_to(mask, nb_device_of(t[0])));
             T x(nb_mul(t[0], on));
             return nb_cumprod(x, 0);
         },
         [](const std::vector<Host> &h) {
             Host x = h[0];
             x.v[1] = x.v[4] = 0;
             return running_ref(x, 0, std::multiplies<double>());
         },
         true});
    add({NB_OP_SCAN_BACKWARD, "scan_backward_cumprod", {F(0.5, 1.5), F(-1, 1)}, {{{3, 6}, {3, 6}}}, FLOATS,
         [](const Tensors &t) {
             T x(nb_detach(t[0]));
             nb_set_requires_grad(x, true);
             T y(nb_cumprod(x, 1));
             if (!y.t || nb_backward(y, t[1], false) != NB_OK) return (nb_tensor *)nullptr;
             return nb_grad(x);
         },
         [](const std::vector<Host> &h) { // sum_{j >= i} g_j prod_{k <= j, k != i} x_k
             Host out(h[0].shape);
             for (int64_t r = 0; r < 3; r++)
                 for (int64_t i = 0; i < 6; i++) {
                     double s = 0;
                     for (int64_t j = i; j < 6; j++) {
                         double p = h[1].v[r * 6 + j];
                         for (int64_t k = 0; k <= j; k++)
                             if (k != i) p *= h[0].v[r * 6 + k];
                         s += p;
                     }
                     out.v[r * 6 + i] = s;
                 }
             return out;
         },
         false, 4});
}

} // namespace op_cases
