// The op harness's cases: cat, stack, split, gather, scatter and indexing.
#include "cases.h"

namespace op_cases {

void join_and_index_cases() {
    add({NB_OP_CAT, "cat_dim0", {F(-3, 3), F(-3, 3)}, {{{2, 3}, {4, 3}}, {{1}, {5}}}, ALL,
         [](const Tensors &t) {
             const nb_tensor *in[2] = {t[0], t[1]};
             return nb_cat(2, in, 0);
         },
         [](const std::vector<Host> &h) { return cat_ref(h, 0); }, true});
    add({NB_OP_CAT, "cat_dim1_three", {F(-3, 3), F(-3, 3), F(-3, 3)}, {{{2, 3}, {2, 1}, {2, 2}}}, ALL,
         [](const Tensors &t) {
             const nb_tensor *in[3] = {t[0], t[1], t[2]};
             return nb_cat(3, in, -1);
         },
         [](const std::vector<Host> &h) { return cat_ref(h, 1); }, true});
    for (int dim : {0, 2})
        add({NB_OP_STACK, "stack_dim" + std::to_string(dim), {F(-3, 3), F(-3, 3)}, {{{2, 3}, {2, 3}}}, ALL,
             [dim](const Tensors &t) {
                 const nb_tensor *in[2] = {t[0], t[1]};
                 return nb_stack(2, in, dim);
             },
             [dim](const std::vector<Host> &h) {
                 std::vector<Host> parts;
                 for (Host x : h) {
                     x.shape.insert(x.shape.begin() + dim, 1);
                     parts.push_back(x);
                 }
                 return cat_ref(parts, dim);
             },
             true});
    // split and chunk: the pieces, concatenated in reverse order
    auto reversed_pieces = [](nb_status status, nb_tensor **pieces, int n, int dim) -> nb_tensor * {
        if (status != NB_OK) return nullptr;
        std::vector<const nb_tensor *> rev(pieces, pieces + n);
        std::reverse(rev.begin(), rev.end());
        nb_tensor *out = nb_cat(n, rev.data(), dim);
        for (int i = 0; i < n; i++) nb_release(pieces[i]);
        return out;
    };
    auto reversed_ref = [](const Host &x, int dim, int64_t piece) {
        std::vector<Host> parts;
        for (int64_t s = 0; s < x.shape[dim]; s += piece)
            parts.push_back(slice_ref(x, dim, s, std::min(s + piece, x.shape[dim]), 1));
        std::reverse(parts.begin(), parts.end());
        return cat_ref(parts, dim);
    };
    add({NB_OP_SPLIT, "split", {F(-3, 3)}, {{{7, 3}}}, ALL,
         [reversed_pieces](const Tensors &t) {
             nb_tensor *p[8];
             int n = 0;
             nb_status status = nb_split(t[0], 3, 0, 8, p, &n);
             return reversed_pieces(status, p, n, 0);
         },
         [reversed_ref](const std::vector<Host> &h) { return reversed_ref(h[0], 0, 3); }, true});
    add({NB_OP_CHUNK, "chunk", {F(-3, 3)}, {{{2, 7}}}, ALL,
         [reversed_pieces](const Tensors &t) {
             nb_tensor *p[8];
             int n = 0;
             nb_status status = nb_chunk(t[0], 3, -1, 8, p, &n);
             return reversed_pieces(status, p, n, 1);
         },
         [reversed_ref](const std::vector<Host> &h) { return reversed_ref(h[0], 1, 3); }, true});
    for (int dim : {0, 1})
        add({NB_OP_INDEX_SELECT, "index_select_dim" + std::to_string(dim), {F(-3, 3), IDX(dim)},
             {{{5, 4}, {6}}, {{3, 6}, {2}}}, ALL,
             [dim](const Tensors &t) { return nb_index_select(t[0], dim, t[1]); },
             [dim](const std::vector<Host> &h) {
                 Shape s = h[0].shape;
                 s[dim] = h[1].numel();
                 Host out(s);
                 for (int64_t i = 0; i < out.numel(); i++) {
                     auto idx = out.unravel(i);
                     idx[dim] = (int64_t)h[1].v[idx[dim]];
                     out.v[i] = h[0].at(idx);
                 }
                 return out;
             },
             true});
    auto gather_ref = [](const Host &x, const Host &index, int dim) {
        Host out(index.shape);
        for (int64_t i = 0; i < out.numel(); i++) {
            auto idx = out.unravel(i);
            idx[dim] = (int64_t)index.v[i];
            out.v[i] = x.at(idx);
        }
        return out;
    };
    for (int dim : {0, 1})
        add({NB_OP_GATHER, "gather_dim" + std::to_string(dim), {F(-3, 3), IDX(dim)},
             {{{4, 5}, {3, 5}}, {{4, 5}, {2, 3}}}, ALL,
             [dim](const Tensors &t) { return nb_gather(t[0], dim, t[1]); },
             [dim, gather_ref](const std::vector<Host> &h) { return gather_ref(h[0], h[1], dim); }, true});
    for (int dim : {0, 1})
        add({NB_OP_SCATTER_ADD, "scatter_add_dim" + std::to_string(dim), {F(-3, 3), IDX(dim), F(-3, 3)},
             dim == 0 ? std::vector<std::vector<Shape>>{{{3, 4}, {5, 4}, {5, 4}}, {{3, 4}, {2, 3}, {3, 4}}}
                      : std::vector<std::vector<Shape>>{{{4, 5}, {4, 7}, {4, 7}}, {{4, 5}, {2, 3}, {3, 4}}},
             NUMERIC,
             [dim](const Tensors &t) { return nb_scatter_add(t[0], dim, t[1], t[2]); },
             [dim](const std::vector<Host> &h) {
                 Host out = h[0];
                 for (int64_t i = 0; i < h[1].numel(); i++) {
                     auto idx = h[1].unravel(i);
                     double add = h[2].at(idx);
                     idx[dim] = (int64_t)h[1].v[i];
                     out.v[out.ravel(idx)] += add;
                 }
                 return out;
             },
             true});
    add({NB_OP_EMBEDDING, "embedding", {F(-3, 3), IDX(0)}, {{{6, 3}, {2, 4}}, {{6, 3}, {}}}, ALL,
         [](const Tensors &t) { return nb_embedding(t[0], t[1]); },
         [](const std::vector<Host> &h) {
             Shape s = h[1].shape;
             s.push_back(3);
             Host out(s);
             for (int64_t i = 0; i < out.numel(); i++) out.v[i] = h[0].v[(int64_t)h[1].v[i / 3] * 3 + i % 3];
             return out;
         },
         true});
    for (int64_t classes : {4, -1})
        add({NB_OP_ONE_HOT, "one_hot_" + std::to_string(classes), {IDX(-1, 4)}, {{{5}}, {{2, 3}}},
             {NB_I64, NB_I32},
             [classes](const Tensors &t) { return nb_one_hot(t[0], classes); },
             [classes](const std::vector<Host> &h) {
                 int64_t c = classes;
                 if (c < 0) c = (int64_t)*std::max_element(h[0].v.begin(), h[0].v.end()) + 1;
                 Shape s = h[0].shape;
                 s.push_back(c);
                 Host out(s);
                 for (int64_t i = 0; i < h[0].numel(); i++) out.v[i * c + (int64_t)h[0].v[i]] = 1;
                 return out;
             },
             false});
}

} // namespace op_cases
