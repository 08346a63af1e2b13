// The op harness's cases: rotary and sinusoidal positions.
#include "cases.h"

namespace op_cases {

// ---- positions ----

Host rope_ref(const Host &x, int64_t offset, double base) {
    Host out(x.shape);
    int64_t dim = x.shape.back(), half = dim / 2, seq = x.shape[x.shape.size() - 2];
    for (int64_t r = 0; r < x.numel() / dim; r++)
        for (int64_t i = 0; i < half; i++) {
            double angle = (double)(offset + r % seq) * std::pow(base, -2.0 * (double)i / (double)dim);
            double x1 = x.v[r * dim + i], x2 = x.v[r * dim + i + half];
            out.v[r * dim + i] = x1 * std::cos(angle) - x2 * std::sin(angle);
            out.v[r * dim + i + half] = x2 * std::cos(angle) + x1 * std::sin(angle);
        }
    return out;
}

void position_cases() {
    add({NB_OP_ROPE, "rope", {F(-2, 2)}, {{{2, 3, 5, 8}}, {{4, 6}}, {{1, 2, 0, 4}}}, FLOATS,
         [](const Tensors &t) { return nb_rope(t[0], 3, 100); },
         [](const std::vector<Host> &h) { return rope_ref(h[0], 3, 100); }, true, 2});
    add({NB_OP_ROPE, "rope_long", {F(-2, 2)}, {{{1, 1, 300, 16}}}, {NB_F32, NB_F64},
         [](const Tensors &t) { return nb_rope(t[0], 1000, 10000); },
         [](const std::vector<Host> &h) { return rope_ref(h[0], 1000, 10000); }, false, 4});
    add({NB_OP_SINUSOIDAL_POSITIONS, "sinusoidal_positions", {}, {{}}, FLOATS,
         [](const Tensors &) { return nb_sinusoidal_positions(7, 6, 100, g_dtype, g_device); },
         [](const std::vector<Host> &) {
             Host h({7, 6});
             for (int p = 0; p < 7; p++)
                 for (int i = 0; i < 3; i++) {
                     double w = std::pow(100.0, -2.0 * i / 6);
                     h.v[p * 6 + 2 * i] = std::sin(p * w);
                     h.v[p * 6 + 2 * i + 1] = std::cos(p * w);
                 }
             return h;
         },
         false});
    add({NB_OP_SWIGLU, "swiglu", {F(-3, 3)}, {{{3, 8}}, {{2, 3, 4}}, {{2, 0}}}, FLOATS,
         [](const Tensors &t) { return nb_swiglu(t[0]); },
         [](const std::vector<Host> &h) {
             Shape shape = h[0].shape;
             int64_t half = shape.back() / 2;
             shape.back() = half;
             Host out(shape);
             for (int64_t i = 0; i < out.numel(); i++) {
                 double a = h[0].v[(i / half) * 2 * half + i % half], b = h[0].v[(i / half) * 2 * half + half + i % half];
                 out.v[i] = a / (1 + std::exp(-a)) * b;
             }
             return out;
         },
         true});
}

} // namespace op_cases
