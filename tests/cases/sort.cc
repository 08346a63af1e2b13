// The op harness's cases: sort, argsort, topk, searchsorted, bucketize and
// multinomial. References sort (value, position) pairs with std::stable_sort
// under PyTorch's order (NaN largest), written here independently of the
// kernels' keys.
#include "cases.h"

namespace op_cases {

namespace {

// a before b in ascending order, NaN last (equal NaNs are ties).
bool less_nan_last(double a, double b) {
    if (std::isnan(a)) return false;
    return std::isnan(b) || a < b;
}

// The positions along dim of each line of x, stably sorted; the first k kept.
// values: the sorted values instead of the positions.
Host sorted_ref(const Host &x, int dim, bool descending, int64_t k, bool values) {
    int nd = (int)x.shape.size();
    if (nd == 0) return values ? x : Host({}, {0});
    dim = (dim + nd) % nd;
    Shape shape = x.shape;
    shape[dim] = k;
    Host out(shape);
    for (int64_t i = 0; i < out.numel(); i++) {
        auto idx = out.unravel(i);
        if (idx[dim] != 0) continue;
        std::vector<int64_t> order(x.shape[dim]);
        std::iota(order.begin(), order.end(), 0);
        auto value = [&](int64_t p) {
            auto j = idx;
            j[dim] = p;
            return x.at(j);
        };
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
            return descending ? less_nan_last(value(b), value(a)) : less_nan_last(value(a), value(b));
        });
        for (int64_t p = 0; p < k; p++) {
            auto j = idx;
            j[dim] = p;
            out.v[out.ravel(j)] = values ? value(order[p]) : (double)order[p];
        }
    }
    return out;
}

// The count of elements of each row of the sequence before value v: those
// < v (left) or <= v (right).
Host search_ref(const Host &sequence, const Host &values, bool right) {
    int64_t m = sequence.shape.back(), rows = sequence.numel() / std::max<int64_t>(m, 1);
    int64_t per_row = rows > 1 ? values.numel() / rows : values.numel();
    Host out(values.shape);
    for (int64_t i = 0; i < values.numel(); i++) {
        int64_t row = rows > 1 ? i / per_row : 0;
        double v = values.v[i];
        int64_t count = 0;
        for (int64_t j = 0; j < m; j++) {
            double s = sequence.v[row * m + j];
            count += right ? s <= v : s < v;
        }
        out.v[i] = std::isnan(v) ? (double)m : (double)count;
    }
    return out;
}

// The multinomial recipe of docs/random.md, written out: integer weights,
// targets from the Philox bits, the first category past the target.
Host multinomial_ref(const Host &w, int64_t samples, bool replacement, uint64_t seed) {
    int64_t c = w.shape.back(), rows = w.numel() / c;
    int log2 = 0;
    while ((int64_t{1} << log2) < c) log2++;
    int bits = std::min(52, 62 - log2);
    Shape shape = w.shape;
    shape.back() = samples;
    Host out(shape);
    for (int64_t r = 0; r < rows; r++) {
        double max = *std::max_element(w.v.begin() + r * c, w.v.begin() + (r + 1) * c);
        std::vector<uint64_t> q(c);
        for (int64_t i = 0; i < c; i++) {
            double x = w.v[r * c + i];
            q[i] = x > 0 ? std::max<uint64_t>(1, (uint64_t)(x / max * std::ldexp(1.0, bits) + 0.5)) : 0;
        }
        for (int64_t s = 0; s < samples; s++) {
            uint64_t total = std::accumulate(q.begin(), q.end(), uint64_t{0});
            auto b = PhiloxRef::block(seed, (uint64_t)(r * samples + s));
            uint64_t u = ((uint64_t)b[0] << 21) ^ (b[1] >> 11);
            uint64_t target = (uint64_t)(((unsigned __int128)u * total) >> 53);
            int64_t i = 0;
            for (uint64_t sum = q[0]; sum <= target; sum += q[++i]) {}
            out.v[r * samples + s] = (double)i;
            if (!replacement) q[i] = 0;
        }
    }
    return out;
}

} // namespace

void sort_cases() {
    const std::vector<std::vector<Shape>> shapes = {{{7}}, {{3, 5}}, {{2, 3, 4}}, {{}}, {{2, 70}}, {{300}}, {{0, 4}}};
    for (bool descending : {false, true}) {
        std::string tag = descending ? "_descending" : "";
        for (int dim : {-1, 0}) {
            std::string name = tag + "_dim" + std::to_string(dim);
            add({NB_OP_SORT, "sort" + name, {F(-3, 3)}, shapes, ALL,
                 [dim, descending](const Tensors &t) { return nb_sort(t[0], dim, descending, nullptr); },
                 [dim, descending](const std::vector<Host> &h) {
                     int64_t k = h[0].shape.empty() ? 1 : h[0].shape[(dim + h[0].shape.size()) % h[0].shape.size()];
                     return sorted_ref(h[0], dim, descending, k, true);
                 },
                 true});
            // Integers in a small range: many ties, which keep their order.
            add({NB_OP_ARGSORT, "argsort" + name, {I(-2, 2)}, shapes, ALL,
                 [dim, descending](const Tensors &t) { return nb_argsort(t[0], dim, descending); },
                 [dim, descending](const std::vector<Host> &h) {
                     int64_t k = h[0].shape.empty() ? 1 : h[0].shape[(dim + h[0].shape.size()) % h[0].shape.size()];
                     return sorted_ref(h[0], dim, descending, k, false);
                 },
                 false});
        }
        add({NB_OP_ARGSORT, "sort_indices_dim1" + tag, {F(-3, 3)}, {{{2, 3, 4}}, {{4, 50, 3}}}, ALL,
             [descending](const Tensors &t) {
                 nb_tensor *indices = nullptr;
                 T values(nb_sort(t[0], 1, descending, &indices));
                 return values.t ? indices : nullptr;
             },
             [descending](const std::vector<Host> &h) {
                 return sorted_ref(h[0], 1, descending, h[0].shape[1], false);
             },
             false});
    }
    // k small against the row takes the heap, a larger k the full sort.
    for (bool largest : {true, false})
        for (int64_t k : {1, 3, 40}) {
            std::string name = std::string("topk_") + (largest ? "largest" : "smallest") + "_k" + std::to_string(k);
            std::vector<std::vector<Shape>> topk_shapes = {{{100, 3}}, {{40}}, {{40, 2, 2}}};
            int dim = k == 3 ? -1 : 0;
            if (k == 3) topk_shapes = {{{5, 100}}, {{2, 3, 40}}};
            if (k == 1) topk_shapes = {{{100, 2}}, {{40}}};
            add({NB_OP_TOPK, name, {F(-3, 3)}, topk_shapes, ALL,
                 [k, dim, largest](const Tensors &t) { return nb_topk(t[0], k, dim, largest, nullptr); },
                 [k, dim, largest](const std::vector<Host> &h) { return sorted_ref(h[0], dim, largest, k, true); },
                 true});
            add({NB_OP_TOPK, name + "_indices", {I(-3, 3)}, topk_shapes, ALL,
                 [k, dim, largest](const Tensors &t) {
                     nb_tensor *indices = nullptr;
                     T values(nb_topk(t[0], k, dim, largest, &indices));
                     return values.t ? indices : nullptr;
                 },
                 [k, dim, largest](const std::vector<Host> &h) { return sorted_ref(h[0], dim, largest, k, false); },
                 false});
        }
    add({NB_OP_TOPK, "topk_k0", {F(-3, 3)}, {{{3, 5}}}, FLOATS,
         [](const Tensors &t) { return nb_topk(t[0], 0, 1, true, nullptr); },
         [](const std::vector<Host> &) { return Host({3, 0}); }, false});
    // A ramp is sorted with ties (integers); integer values land on them.
    for (bool right : {false, true}) {
        std::string side = right ? "_right" : "_left";
        add({NB_OP_SEARCHSORTED, "searchsorted_1d" + side, {RAMP_(-5, 5), I(-6, 6)},
             {{{11}, {4, 5}}, {{21}, {7}}, {{11}, {}}, {{1}, {3}}}, SIGNED,
             [right](const Tensors &t) { return nb_searchsorted(t[0], t[1], right); },
             [right](const std::vector<Host> &h) { return search_ref(h[0], h[1], right); }, false});
        add({NB_OP_SEARCHSORTED, "searchsorted_u8" + side, {RAMP_(0, 200), I(0, 255)}, {{{30}, {40}}}, {NB_U8},
             [right](const Tensors &t) { return nb_searchsorted(t[0], t[1], right); },
             [right](const std::vector<Host> &h) { return search_ref(h[0], h[1], right); }, false});
        add({NB_OP_SEARCHSORTED, "searchsorted_rows" + side, {RAMP_(-20, 20), F(-22, 22)},
             {{{3, 8}, {3, 5}}, {{2, 2, 6}, {2, 2, 3}}}, SIGNED,
             [right](const Tensors &t) { return nb_searchsorted(t[0], t[1], right); },
             [right](const std::vector<Host> &h) { return search_ref(h[0], h[1], right); }, false});
        add({NB_OP_BUCKETIZE, "bucketize" + side, {I(-6, 6), RAMP_(-4, 4)}, {{{3, 4}, {9}}, {{5}, {3}}}, SIGNED,
             [right](const Tensors &t) { return nb_bucketize(t[0], t[1], right); },
             [right](const std::vector<Host> &h) { return search_ref(h[1], h[0], right); }, false});
    }
    const uint64_t seed = 4242;
    for (bool replacement : {true, false})
        add({NB_OP_MULTINOMIAL, std::string("multinomial") + (replacement ? "_replacement" : ""),
             {F(0, 2)}, {{{3, 6}}, {{10}}, {{2, 1000}}}, FLOATS,
             [seed, replacement](const Tensors &t) {
                 nb_generator *g = nb_generator_create(seed);
                 int64_t samples = nb_shape(t[0])[nb_ndim(t[0]) - 1] == 1000 ? 50 : 5;
                 nb_tensor *out = nb_multinomial(t[0], samples, replacement, g);
                 nb_generator_free(g);
                 return out;
             },
             [seed, replacement](const std::vector<Host> &h) {
                 return multinomial_ref(h[0], h[0].shape.back() == 1000 ? 50 : 5, replacement, seed);
             },
             false});
}

} // namespace op_cases
