// The op harness's cases: max, average and adaptive pooling.
#include "cases.h"

namespace op_cases {

// Windows of a 2-D pool in double: rows [y0, y1) of output row i.
struct PoolRef {
    int kernel[2], stride[2], padding[2];
    bool adaptive;
    int64_t out[2];
    void range(int d, int64_t i, int64_t in, int64_t *lo, int64_t *hi, double *area) const {
        if (adaptive) {
            *lo = i * in / out[d];
            *hi = ((i + 1) * in + out[d] - 1) / out[d];
            *area = (double)(*hi - *lo);
        } else {
            *lo = i * stride[d] - padding[d];
            *hi = *lo + kernel[d];
            *area = kernel[d];
        }
        *lo = std::max<int64_t>(*lo, 0);
        *hi = std::min<int64_t>(*hi, in);
    }
    int64_t out_size(int d, int64_t in) const {
        return adaptive ? out[d] : (in + 2 * padding[d] - kernel[d]) / stride[d] + 1;
    }
    // fn(window values, area, first index of the max) per output element
    Host apply(const Host &x, const std::function<double(const std::vector<double> &, double, int64_t)> &fn) const {
        int64_t H = x.shape[2], W = x.shape[3], ho = out_size(0, H), wo = out_size(1, W);
        Host out({x.shape[0], x.shape[1], ho, wo});
        for (int64_t i = 0; i < out.numel(); i++) {
            auto idx = out.unravel(i);
            int64_t y0, y1, x0, x1;
            double ah, aw;
            range(0, idx[2], H, &y0, &y1, &ah);
            range(1, idx[3], W, &x0, &x1, &aw);
            std::vector<double> v;
            int64_t best = -1;
            double best_v = -INFINITY;
            for (int64_t y = y0; y < y1; y++)
                for (int64_t xx = x0; xx < x1; xx++) {
                    double a = x.at({idx[0], idx[1], y, xx});
                    v.push_back(a);
                    if (best < 0 || a > best_v) best = y * W + xx, best_v = a;
                }
            out.v[i] = fn(v, ah * aw, best);
        }
        return out;
    }
};

void pool_cases() {
    const std::vector<PoolRef> pools = {{{2, 2}, {2, 2}, {0, 0}, false, {0, 0}},
                                        {{3, 3}, {2, 2}, {1, 1}, false, {0, 0}},
                                        {{2, 3}, {1, 2}, {1, 0}, false, {0, 0}}};
    const std::vector<std::vector<Shape>> images = {{{2, 3, 5, 6}}, {{1, 2, 7, 7}}};
    for (size_t k = 0; k < pools.size(); k++) {
        PoolRef p = pools[k];
        std::string tag = std::to_string(k);
        add({NB_OP_MAX_POOL2D, "max_pool2d_" + tag, {F(-2, 2)}, images, FLOATS,
             [p](const Tensors &t) { return nb_max_pool2d(t[0], p.kernel, p.stride, p.padding); },
             [p](const std::vector<Host> &h) {
                 return p.apply(h[0], [](const std::vector<double> &v, double, int64_t) {
                     return *std::max_element(v.begin(), v.end());
                 });
             },
             true});
        add({NB_OP_MAX_POOL2D, "max_pool2d_indices_" + tag, {F(-2, 2)}, images, FLOATS,
             [p](const Tensors &t) -> nb_tensor * {
                 nb_tensor *indices = nullptr;
                 T values(nb_max_pool2d_with_indices(t[0], p.kernel, p.stride, p.padding, &indices));
                 return values.t ? indices : nullptr;
             },
             [p](const std::vector<Host> &h) {
                 return p.apply(h[0], [](const std::vector<double> &, double, int64_t best) { return (double)best; });
             },
             false});
        add({NB_OP_AVG_POOL2D, "avg_pool2d_" + tag, {F(-2, 2)}, images, FLOATS,
             [p](const Tensors &t) { return nb_avg_pool2d(t[0], p.kernel, p.stride, p.padding); },
             [p](const std::vector<Host> &h) {
                 return p.apply(h[0], [](const std::vector<double> &v, double area, int64_t) {
                     return std::accumulate(v.begin(), v.end(), 0.0) / area;
                 });
             },
             true});
    }
    for (auto out : std::vector<std::pair<int64_t, int64_t>>{{3, 4}, {1, 1}, {5, 7}}) {
        PoolRef p = {{1, 1}, {1, 1}, {0, 0}, true, {out.first, out.second}};
        add({NB_OP_AVG_POOL2D, "adaptive_avg_pool2d_" + std::to_string(out.first) + "x" + std::to_string(out.second),
             {F(-2, 2)}, {{{1, 2, 5, 7}}}, FLOATS,
             [out](const Tensors &t) { return nb_adaptive_avg_pool2d(t[0], out.first, out.second); },
             [p](const std::vector<Host> &h) {
                 return p.apply(h[0], [](const std::vector<double> &v, double area, int64_t) {
                     return std::accumulate(v.begin(), v.end(), 0.0) / area;
                 });
             },
             true});
    }
    // the backward kernel through autograd: d sum(avg_pool(x)) / dx
    PoolRef p = pools[1];
    add({NB_OP_AVG_POOL2D_BACKWARD, "avg_pool2d_backward", {F(-2, 2)}, {{{1, 2, 7, 7}}}, FLOATS,
         [p](const Tensors &t) -> nb_tensor * {
             T leaf(nb_detach(t[0]));
             if (!leaf.t || nb_set_requires_grad(leaf, true) != NB_OK) return nullptr;
             T y(nb_avg_pool2d(leaf, p.kernel, p.stride, p.padding));
             T total(y.t ? nb_sum(y, 0, nullptr, false) : nullptr);
             if (!total.t || nb_backward(total, nullptr, false) != NB_OK) return nullptr;
             return nb_grad(leaf);
         },
         [p](const std::vector<Host> &h) {
             const Host &x = h[0];
             Host g(x.shape);
             int64_t H = x.shape[2], W = x.shape[3];
             for (int64_t oy = 0; oy < p.out_size(0, H); oy++)
                 for (int64_t ox = 0; ox < p.out_size(1, W); ox++) {
                     int64_t y0, y1, x0, x1;
                     double ah, aw;
                     p.range(0, oy, H, &y0, &y1, &ah);
                     p.range(1, ox, W, &x0, &x1, &aw);
                     for (int64_t c = 0; c < x.shape[1]; c++)
                         for (int64_t y = y0; y < y1; y++)
                             for (int64_t xx = x0; xx < x1; xx++) g.v[g.ravel({0, c, y, xx})] += 1 / (ah * aw);
                 }
             return g;
         },
         false});
    add({NB_OP_MEAN, "global_avg_pool2d", {F(-2, 2)}, {{{2, 3, 4, 5}}}, FLOATS,
         [](const Tensors &t) { return nb_global_avg_pool2d(t[0]); },
         [](const std::vector<Host> &h) { return reduce_ref(h[0], {2, 3}, true, fold_mean); }, true});
}

} // namespace op_cases
