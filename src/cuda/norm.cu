// BatchNorm's stage kernels over x contiguous [N, C, S] (src/ops/norm.c has
// the formulas).
//  - The per-channel sums (statistics: x - shift and its square, the shift
//    being the channel's first value so that m2 does not cancel; backward: g
//    and g xhat) split each channel over `parts` blocks, so a 64-channel
//    layer still fills 132 SMs; the blocks accumulate in double and write
//    partials that a second kernel merges per channel in part order.
//  - The elementwise stages (apply; backward apply) run a thread per 16-byte
//    vector when S allows it (a vector then lies in one channel), else per
//    element, computing in the statistics' type.
// Both index in 32 bits when the tensor has fewer than 2^31 elements.
#include "rows.cuh"

typedef struct nb_bn_args {
    const void *a, *b, *params; // stats: x; apply: x; backward: g, x; then the packed [k, C]
    void *out;
    int64_t n, channels, s;
    bool packed; // s is a multiple of the vector and every pointer 16-byte aligned
} nb_bn_args;

// The offset of value i (of n * s) of channel c.
template <typename I>
__device__ __forceinline__ I nb_bn_offset(const nb_bn_args &a, I c, I i) {
    I image = i / (I)a.s;
    return (image * (I)a.channels + c) * (I)a.s + (i - image * (I)a.s);
}

// W values from at (a 16-byte pack when W is the vector width), in P.
template <typename T, int W, typename P>
__device__ __forceinline__ void nb_bn_load(const T *p, P (&v)[W]) {
    if constexpr (W == 1) {
        v[0] = nb_to_compute<P>(*p);
    } else {
        nb_pack<T, W> pack = *(const nb_pack<T, W> *)p;
#pragma unroll
        for (int j = 0; j < W; j++) v[j] = nb_to_compute<P>(pack.v[j]);
    }
}

template <typename T, int W, typename P>
__device__ __forceinline__ void nb_bn_store(T *p, const P (&v)[W]) {
    nb_pack<T, W> pack;
#pragma unroll
    for (int j = 0; j < W; j++) pack.v[j] = nb_to_storage<T>(v[j]);
    *(nb_pack<T, W> *)p = pack;
}

// A part's sums of channel c over values [begin, end) taken W at a time.
template <typename T, int W, typename I>
__device__ __forceinline__ void nb_bn_fold(const nb_bn_args &a, I c, I begin, I end, bool stats, double shift,
                                           double mean, double invstd, double &one, double &two) {
    using P = nb_compute_t<T>;
    for (I u = begin + threadIdx.x; u < end; u += blockDim.x) {
        I at = nb_bn_offset<I>(a, c, u * W);
        P v[W], x[W];
        nb_bn_load<T, W>((const T *)a.a + at, v);
        if (!stats) nb_bn_load<T, W>((const T *)a.b + at, x);
#pragma unroll
        for (int j = 0; j < W; j++) {
            double d = stats ? (double)v[j] - shift : (double)v[j];
            one += d;
            two += stats ? d * d : d * ((double)x[j] - mean) * invstd;
        }
    }
}

// The statistics' shift of channel c: its first value, 0 if not finite (a
// non-finite value makes the statistics non-finite as without a shift).
template <typename T> __device__ __forceinline__ double nb_bn_shift(const nb_bn_args &a, int64_t c) {
    double shift = (double)nb_to_compute<nb_compute_t<T>>(((const T *)a.a)[c * a.s]);
    return isfinite(shift) ? shift : 0.0;
}

// partial[part][0][c], partial[part][1][c]: the part's sums of channel c
// (the grid's y walks the channels).
template <typename T, typename I>
__global__ void nb_bn_partial_sums(nb_bn_args a, double *partial, bool stats) {
    using P = nb_compute_t<T>;
    constexpr int V = 16 / sizeof(T);
    const P *params = (const P *)a.params;
    I parts = gridDim.x, part = blockIdx.x;
    I count = (I)(a.n * a.s), units = a.packed ? count / V : count;
    I begin = (I)((int64_t)units * part / parts), end = (I)((int64_t)units * (part + 1) / parts);
    for (I c = blockIdx.y; c < (I)a.channels; c += gridDim.y) {
        double shift = stats ? nb_bn_shift<T>(a, c) : 0;
        double mean = stats ? 0 : (double)params[c], invstd = stats ? 0 : (double)params[a.channels + c];
        double one = 0, two = 0;
        if (a.packed) nb_bn_fold<T, V, I>(a, c, begin, end, stats, shift, mean, invstd, one, two);
        else nb_bn_fold<T, 1, I>(a, c, begin, end, stats, shift, mean, invstd, one, two);
        one = nb_block_sum(one);
        two = nb_block_sum(two);
        if (threadIdx.x == 0) {
            partial[(2 * (int64_t)part) * a.channels + c] = one;
            partial[(2 * (int64_t)part + 1) * a.channels + c] = two;
        }
    }
}

// stats: out[0][c] = mean, out[1][c] = m2; backward: sum g, sum g xhat.
template <typename T>
__global__ void nb_bn_merge(nb_bn_args a, const double *partial, int parts, bool stats) {
    using P = nb_compute_t<T>;
    int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (c >= a.channels) return;
    double one = 0, two = 0;
    for (int part = 0; part < parts; part++) {
        one += partial[(2 * (int64_t)part) * a.channels + c];
        two += partial[(2 * (int64_t)part + 1) * a.channels + c];
    }
    P *out = (P *)a.out;
    if (stats) {
        double count = (double)(a.n * a.s), shift = nb_bn_shift<T>(a, c);
        out[c] = (P)(shift + one / count);
        out[a.channels + c] = (P)fmax(two - one * one / count, 0.0);
    } else {
        out[c] = (P)one;
        out[a.channels + c] = (P)two;
    }
}

// apply: (x - mean) invstd w + b; backward apply: w invstd (g - sum_g / n - xhat sum_gx / n).
template <typename T, int W, typename I>
__device__ __forceinline__ void nb_bn_map(const nb_bn_args &a, bool backward) {
    using P = nb_compute_t<T>;
    const P *params = (const P *)a.params;
    I units = (I)(a.n * a.channels * a.s) / W, step = gridDim.x * blockDim.x;
    P count = (P)(a.n * a.s);
    for (I u = blockIdx.x * blockDim.x + threadIdx.x; u < units; u += step) {
        I at = u * W, c = at / (I)a.s % (I)a.channels;
        P mean = params[c], invstd = params[a.channels + c], w = params[2 * a.channels + c];
        P shift = backward ? params[3 * a.channels + c] / count : params[3 * a.channels + c];
        P cross = backward ? params[4 * a.channels + c] / count : (P)0;
        P v[W], x[W];
        nb_bn_load<T, W>((const T *)a.a + at, v);
        if (backward) nb_bn_load<T, W>((const T *)a.b + at, x);
#pragma unroll
        for (int j = 0; j < W; j++)
            v[j] = backward ? w * invstd * (v[j] - shift - (x[j] - mean) * invstd * cross)
                            : (v[j] - mean) * invstd * w + shift;
        nb_bn_store<T, W>((T *)a.out + at, v);
    }
}

template <typename T, typename I>
__global__ void nb_bn_elementwise(nb_bn_args a, bool backward) {
    if (a.packed) nb_bn_map<T, 16 / sizeof(T), I>(a, backward);
    else nb_bn_map<T, 1, I>(a, backward);
}

// The per-channel sums: parts blocks a channel, about 8 blocks an SM in all,
// each with at least 16 vectors a thread.
template <typename T, typename I>
static nb_status bn_sums(const char *fn, nb_cuda_ctx *ctx, const nb_bn_args &a, bool stats) {
    constexpr int V = 16 / sizeof(T);
    int64_t count = a.n * a.s, units = a.packed ? count / V : count;
    int64_t wanted = ((int64_t)ctx->multiprocessors * 8 + a.channels - 1) / a.channels;
    int64_t most = (units + NB_CUDA_THREADS * 16 - 1) / (NB_CUDA_THREADS * 16);
    int parts = (int)(wanted < most ? wanted : most);
    if (parts < 1) parts = 1;
    void *partial, *block;
    size_t bytes = (size_t)(2 * parts * a.channels) * sizeof(double);
    NB_TRY(nb__cuda_scratch(fn, ctx, bytes, &partial, &block));
    dim3 grid((unsigned)parts, (unsigned)(a.channels < 65535 ? a.channels : 65535));
    nb_bn_partial_sums<T, I><<<grid, NB_CUDA_THREADS, 0, ctx->handle>>>(a, (double *)partial, stats);
    nb_bn_merge<T><<<(unsigned)((a.channels + NB_CUDA_THREADS - 1) / NB_CUDA_THREADS), NB_CUDA_THREADS, 0,
                     ctx->handle>>>(a, (const double *)partial, parts, stats);
    nb_status status = nb__cuda_launched(fn);
    nb__cuda_free(partial, bytes, nb_cuda(ctx->device), block);
    return status;
}

template <typename T, typename I>
static nb_status bn_stage(const char *fn, nb_cuda_ctx *ctx, const nb_bn_args &a, nb_op op) {
    if (op == NB_OP_BATCH_NORM_STATS || op == NB_OP_BATCH_NORM_BACKWARD_REDUCE)
        return bn_sums<T, I>(fn, ctx, a, op == NB_OP_BATCH_NORM_STATS);
    constexpr int V = 16 / sizeof(T);
    int64_t units = a.n * a.channels * a.s / (a.packed ? V : 1);
    unsigned blocks = nb__cuda_blocks(ctx, units, NB_CUDA_THREADS);
    nb_bn_elementwise<T, I><<<blocks, NB_CUDA_THREADS, 0, ctx->handle>>>(a, op == NB_OP_BATCH_NORM_BACKWARD_APPLY);
    return nb__cuda_launched(fn);
}

nb_status nb__cuda_batch_norm(const nb_op_args *args) {
    const char *fn = "nb_batch_norm";
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin(fn, args->out->storage->device.index, &ctx));
    bool stats = args->op == NB_OP_BATCH_NORM_STATS;
    const nb_tensor *x = stats || args->op == NB_OP_BATCH_NORM_APPLY ? args->in[0] : args->in[1];
    nb_bn_args a = {};
    a.a = nb__data(args->in[0]);
    if (args->n_in == 3) a.b = nb__data(args->in[1]);
    if (!stats) a.params = nb__data(args->in[args->n_in - 1]);
    a.out = nb__data(args->out);
    a.n = x->shape[0];
    a.channels = x->shape[1];
    a.s = nb__numel(x->ndim - 2, x->shape + 2);
    const void *pointers[3] = {a.a, a.b, stats ? NULL : a.out};
    bool aligned = true;
    for (int i = 0; i < 3; i++) aligned = aligned && (uintptr_t)pointers[i] % 16 == 0;
    bool small = nb_numel(x) < ((int64_t)1 << 31);
    nb_status status = NB_OK;
    NB_CUDA_FLOAT_SWITCH(x->dtype, T, {
        a.packed = aligned && a.s % (16 / sizeof(T)) == 0;
        status = small ? bn_stage<T, uint32_t>(fn, &ctx, a, args->op) : bn_stage<T, int64_t>(fn, &ctx, a, args->op);
    });
    return status;
}

// ---- layer_norm and rms_norm over rows of D (src/ops/norm.c has the
// formulas), statistics in the compute type (f32 for f16 and bf16).
//  - Rows that fit (rows.cuh: up to 16 values a thread, 16,384 f32 values
//    forward in 1024 threads, 8,192 backward in 512) are held in registers: read once with 16-byte loads,
//    written once. The backward's teams keep running column sums of g xhat
//    and g for the weight and bias over the rows they visit, written once per
//    team as partials (no second read of g and x) that a last kernel adds up
//    in team order.
//  - Longer rows: a block per row reading the row from L1/L2 on its later
//    passes; the column sums then come from a kernel in which each block sums
//    a chunk of rows for 256 columns into partials.
// Either way the sums are fixed-order (no atomics), so they do not depend on
// timing. ----

#define NB_ROW_NORM_TEAMS_PER_SM 8

// Pack k of the team's columns of a weight (pad 1) or bias (pad 0); a null
// pointer gives the pads.
template <typename T>
__device__ __forceinline__ void nb_row_norm_param(const T *p, int d, bool packed, int first, nb_compute_t<T> pad,
                                                  nb_compute_t<T> (&v)[16 / sizeof(T)]) {
    nb_row_load_pack(p, p ? d : 0, packed, first, pad, v);
}

template <typename T, int K>
__global__ void __launch_bounds__(1024)
    nb_row_norm_held_forward(const T *x, const T *w, const T *b, T *y, nb_compute_t<T> *stats, int64_t rows,
                             int d, double eps, bool rms, int team_threads, bool packed) {
    using C = nb_compute_t<T>;
    constexpr int V = 16 / sizeof(T);
    __shared__ C sums[32], squares[32];
    nb_row_team team = nb_row_team_of(team_threads);
    int64_t step = (int64_t)gridDim.x * team.per_block;
    for (int64_t first = (int64_t)blockIdx.x * team.per_block; first < rows; first += step) {
        int64_t row = first + team.index;
        bool valid = row < rows;
        C v[K][V];
        nb_row_load<T, K>(x + (valid ? row : 0) * d, valid ? d : 0, packed, team, (C)0, v);
        C mean = 0;
        if (!rms) {
            C sum = 0;
#pragma unroll
            for (int k = 0; k < K; k++)
#pragma unroll
                for (int j = 0; j < V; j++) sum += v[k][j];
            mean = nb_row_reduce(sum, team, sums, nb_add_op()) / (C)d;
        }
        C square = 0;
#pragma unroll
        for (int k = 0; k < K; k++)
#pragma unroll
            for (int j = 0; j < V; j++) {
                v[k][j] = nb_row_pack_first(team, k, V) + j < d ? v[k][j] - mean : (C)0;
                square += v[k][j] * v[k][j];
            }
        C rstd = (C)1 / sqrt(nb_row_reduce(square, team, squares, nb_add_op()) / (C)d + (C)eps);
#pragma unroll
        for (int k = 0; k < K; k++) {
            C scale[V], shift[V];
            nb_row_norm_param(w, d, packed, nb_row_pack_first(team, k, V), (C)1, scale);
            nb_row_norm_param(b, d, packed, nb_row_pack_first(team, k, V), (C)0, shift);
#pragma unroll
            for (int j = 0; j < V; j++) v[k][j] = v[k][j] * rstd * scale[j] + shift[j];
        }
        if (!valid) continue;
        nb_row_store<T, K>(y + row * d, d, packed, team, v);
        if (team.lane == 0) {
            stats[2 * row] = mean;
            stats[2 * row + 1] = rstd;
        }
    }
}

// dx of each row the team visits; with partial set, the team's column sums
// of g xhat and g go to partial[team][0][col] and partial[team][1][col].
template <typename T, int K>
__global__ void __launch_bounds__(512)
    nb_row_norm_held_backward(const T *g, const T *x, const T *w, const nb_compute_t<T> *stats, T *dx,
                              nb_compute_t<T> *partial, int64_t rows, int d, bool rms, int team_threads,
                              bool packed) {
    using C = nb_compute_t<T>;
    constexpr int V = 16 / sizeof(T);
    __shared__ C sums[32], crossed[32];
    nb_row_team team = nb_row_team_of(team_threads);
    C sum_gx[K][V] = {}, sum_g[K][V] = {};
    int64_t step = (int64_t)gridDim.x * team.per_block;
    for (int64_t first = (int64_t)blockIdx.x * team.per_block; first < rows; first += step) {
        int64_t row = first + team.index;
        bool valid = row < rows;
        int size = valid ? d : 0;
        C gv[K][V], xv[K][V];
        nb_row_load<T, K>(g + (valid ? row : 0) * d, size, packed, team, (C)0, gv);
        nb_row_load<T, K>(x + (valid ? row : 0) * d, size, packed, team, (C)0, xv);
        C mean = valid ? stats[2 * row] : (C)0, rstd = valid ? stats[2 * row + 1] : (C)0;
        C gw_total = 0, gwx_total = 0;
#pragma unroll
        for (int k = 0; k < K; k++) {
            C wv[V];
            nb_row_norm_param(w, d, packed, nb_row_pack_first(team, k, V), (C)1, wv);
#pragma unroll
            for (int j = 0; j < V; j++) {
                xv[k][j] = (xv[k][j] - mean) * rstd; // xhat; g is 0 past the row
                sum_gx[k][j] += gv[k][j] * xv[k][j];
                sum_g[k][j] += gv[k][j];
                gv[k][j] *= wv[j];
                gw_total += gv[k][j];
                gwx_total += gv[k][j] * xv[k][j];
            }
        }
        C a = rms ? (C)0 : nb_row_reduce(gw_total, team, sums, nb_add_op()) / (C)d;
        C c = nb_row_reduce(gwx_total, team, crossed, nb_add_op()) / (C)d;
#pragma unroll
        for (int k = 0; k < K; k++)
#pragma unroll
            for (int j = 0; j < V; j++) gv[k][j] = rstd * (gv[k][j] - a - xv[k][j] * c);
        if (valid) nb_row_store<T, K>(dx + row * d, d, packed, team, gv);
    }
    if (!partial) return;
    C *mine = partial + ((int64_t)blockIdx.x * team.per_block + team.index) * 2 * d;
#pragma unroll
    for (int k = 0; k < K; k++)
#pragma unroll
        for (int j = 0; j < V; j++) {
            int col = nb_row_pack_first(team, k, V) + j;
            if (col < d) {
                mine[col] = sum_gx[k][j];
                mine[d + col] = sum_g[k][j];
            }
        }
}

template <typename T>
__global__ void nb_row_norm_forward(const T *x, const T *w, const T *b, T *y, nb_compute_t<T> *stats,
                                    int64_t rows, int64_t d, double eps, bool rms) {
    using C = nb_compute_t<T>;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * d;
        C sum = 0, squares = 0;
        for (int64_t k = threadIdx.x; k < d && !rms; k += blockDim.x) sum += nb_to_compute<C>(xr[k]);
        C mean = rms ? (C)0 : nb_block_sum(sum) / (C)d;
        for (int64_t k = threadIdx.x; k < d; k += blockDim.x) {
            C centered = nb_to_compute<C>(xr[k]) - mean;
            squares += centered * centered;
        }
        C rstd = (C)1 / sqrt(nb_block_sum(squares) / (C)d + (C)eps);
        for (int64_t k = threadIdx.x; k < d; k += blockDim.x) {
            C v = (nb_to_compute<C>(xr[k]) - mean) * rstd;
            if (w) v *= nb_to_compute<C>(w[k]);
            if (b) v += nb_to_compute<C>(b[k]);
            y[r * d + k] = nb_to_storage<T>(v);
        }
        if (threadIdx.x == 0) {
            stats[2 * r] = mean;
            stats[2 * r + 1] = rstd;
        }
    }
}

template <typename T>
__global__ void nb_row_norm_backward(const T *g, const T *x, const T *w, const nb_compute_t<T> *stats,
                                     T *dx, int64_t rows, int64_t d, bool rms) {
    using C = nb_compute_t<T>;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *gr = g + r * d, *xr = x + r * d;
        C mean = stats[2 * r], rstd = stats[2 * r + 1], sum_gw = 0, sum_gwx = 0;
        for (int64_t k = threadIdx.x; k < d; k += blockDim.x) {
            C gw = nb_to_compute<C>(gr[k]) * (w ? nb_to_compute<C>(w[k]) : (C)1);
            sum_gw += gw;
            sum_gwx += gw * (nb_to_compute<C>(xr[k]) - mean) * rstd;
        }
        C a = rms ? (C)0 : nb_block_sum(sum_gw) / (C)d, c = nb_block_sum(sum_gwx) / (C)d;
        for (int64_t k = threadIdx.x; k < d; k += blockDim.x) {
            C gw = nb_to_compute<C>(gr[k]) * (w ? nb_to_compute<C>(w[k]) : (C)1);
            C xhat = (nb_to_compute<C>(xr[k]) - mean) * rstd;
            dx[r * d + k] = nb_to_storage<T>(rstd * (gw - a - xhat * c));
        }
    }
}

// partial[chunk][0][k] = sum of g xhat, partial[chunk][1][k] = sum of g, over the chunk's rows.
template <typename T>
__global__ void nb_row_norm_param_partials(const T *g, const T *x, const nb_compute_t<T> *stats,
                                           nb_compute_t<T> *partial, int64_t rows, int64_t d,
                                           int64_t rows_per_chunk) {
    using C = nb_compute_t<T>;
    int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, chunk = blockIdx.y;
    if (k >= d) return;
    int64_t first = chunk * rows_per_chunk, last = min(rows, first + rows_per_chunk);
    C sum_gx = 0, sum_g = 0;
    for (int64_t r = first; r < last; r++) {
        C gv = nb_to_compute<C>(g[r * d + k]);
        sum_gx += gv * (nb_to_compute<C>(x[r * d + k]) - stats[2 * r]) * stats[2 * r + 1];
        sum_g += gv;
    }
    partial[(chunk * 2) * d + k] = sum_gx;
    partial[(chunk * 2 + 1) * d + k] = sum_g;
}

template <typename C>
__global__ void nb_row_norm_add_partials(const C *partial, C *dparams, int64_t chunks, int64_t d) {
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i >= 2 * d) return;
    C total = 0;
    for (int64_t chunk = 0; chunk < chunks; chunk++) total += partial[chunk * 2 * d + i];
    dparams[i] += total;
}

// Blocks for the held kernels: teams per_block to a block, at most `most`
// teams in all (each team then walks several rows).
static unsigned row_norm_blocks(int64_t rows, unsigned threads, int team_threads, int64_t most_teams) {
    int64_t per_block = threads / team_threads;
    int64_t teams = rows < most_teams ? rows : most_teams;
    return (unsigned)((teams + per_block - 1) / per_block);
}

static bool all_aligned(int n, const void *const *pointers) {
    for (int i = 0; i < n; i++)
        if ((uintptr_t)pointers[i] % 16) return false;
    return true;
}

// The column sums of g xhat and g over `chunks` partials [chunk][2][d],
// added to dparams in chunk order; frees partial.
template <typename C>
static nb_status add_param_partials(const char *fn, nb_cuda_ctx *ctx, void *partial, void *block,
                                    int64_t chunks, int64_t d, const nb_tensor *dparams) {
    nb_row_norm_add_partials<C><<<(unsigned)((2 * d + NB_CUDA_THREADS - 1) / NB_CUDA_THREADS), NB_CUDA_THREADS,
                                  0, ctx->handle>>>((const C *)partial, (C *)nb__data(dparams), chunks, d);
    nb_status status = nb__cuda_launched(fn);
    nb__cuda_free(partial, (size_t)(chunks * 2 * d) * sizeof(C), nb_cuda(ctx->device), block);
    return status;
}

template <typename T>
static nb_status row_norm_forward(const nb_op_args *args, nb_cuda_ctx *ctx, int64_t rows, int64_t d, bool rms) {
    using C = nb_compute_t<T>;
    constexpr int V = 16 / sizeof(T);
    auto data = [](const nb_tensor *t) { return t ? (const T *)nb__data(t) : (const T *)nullptr; };
    const T *x = data(args->in[0]), *w = data(args->in[1]), *b = data(args->in[2]);
    T *y = (T *)nb__data(args->out);
    C *stats = (C *)nb__data(args->in[3]);
    /* 16 values a thread: with 32 the weight and bias packs spill */
    nb_row_layout layout = nb_row_layout_of(d, V, nb_held_values<C>() / V / 2);
    if (layout.held) {
        const void *pointers[4] = {x, y, w, b};
        bool packed = d % V == 0 && all_aligned(4, pointers);
        unsigned threads = nb_row_block_threads(layout.threads);
        unsigned blocks = row_norm_blocks(rows, threads, layout.threads,
                                          (int64_t)ctx->multiprocessors * 2048 / layout.threads);
        NB_ROW_PACKS_SWITCH(layout.packs, K, if constexpr (2 * K * V <= nb_held_values<C>()) {
            nb_row_norm_held_forward<T, K><<<blocks, threads, 0, ctx->handle>>>(
                x, w, b, y, stats, rows, (int)d, args->attrs.norm.eps, rms, layout.threads, packed);
        });
    } else {
        unsigned blocks = (unsigned)(rows < 65535 ? rows : 65535);
        nb_row_norm_forward<T><<<blocks, NB_CUDA_THREADS, 0, ctx->handle>>>(x, w, b, y, stats, rows, d,
                                                                          args->attrs.norm.eps, rms);
    }
    return nb__cuda_launched(nb__op_fn(args->op));
}

template <typename T>
static nb_status row_norm_backward(const nb_op_args *args, nb_cuda_ctx *ctx, int64_t rows, int64_t d, bool rms) {
    using C = nb_compute_t<T>;
    constexpr int V = 16 / sizeof(T);
    const char *fn = nb__op_fn(args->op);
    auto data = [](const nb_tensor *t) { return t ? (const T *)nb__data(t) : (const T *)nullptr; };
    const T *g = data(args->in[0]), *x = data(args->in[1]), *w = data(args->in[2]);
    T *dx = (T *)nb__data(args->out);
    const C *stats = (const C *)nb__data(args->in[3]);
    const nb_tensor *dparams = args->in[4];
    nb_row_layout layout = nb_row_layout_of(d, V, nb_held_values<C>() / V / 2);
    if (layout.held && layout.threads <= 512) {
        const void *pointers[4] = {g, x, w, dx};
        bool packed = d % V == 0 && all_aligned(4, pointers);
        unsigned threads = nb_row_block_threads(layout.threads);
        unsigned blocks = row_norm_blocks(rows, threads, layout.threads,
                                          (int64_t)ctx->multiprocessors * NB_ROW_NORM_TEAMS_PER_SM);
        int64_t teams = (int64_t)blocks * (threads / layout.threads);
        void *partial = NULL, *block = NULL;
        if (dparams) NB_TRY(nb__cuda_scratch(fn, ctx, (size_t)(teams * 2 * d) * sizeof(C), &partial, &block));
        NB_ROW_PACKS_SWITCH(layout.packs, K, if constexpr (2 * K * V <= nb_held_values<C>()) {
            nb_row_norm_held_backward<T, K><<<blocks, threads, 0, ctx->handle>>>(
                g, x, w, stats, dx, (C *)partial, rows, (int)d, rms, layout.threads, packed);
        });
        nb_status status = nb__cuda_launched(fn);
        if (!dparams) return status;
        if (status != NB_OK) {
            nb__cuda_free(partial, (size_t)(teams * 2 * d) * sizeof(C), nb_cuda(ctx->device), block);
            return status;
        }
        return add_param_partials<C>(fn, ctx, partial, block, teams, d, dparams);
    }
    unsigned blocks = (unsigned)(rows < 65535 ? rows : 65535);
    nb_row_norm_backward<T><<<blocks, NB_CUDA_THREADS, 0, ctx->handle>>>(g, x, w, stats, dx, rows, d, rms);
    NB_TRY(nb__cuda_launched(fn));
    if (!dparams) return NB_OK;
    int64_t chunks = rows < 256 ? rows : 256, per_chunk = (rows + chunks - 1) / chunks;
    void *partial, *block;
    NB_TRY(nb__cuda_scratch(fn, ctx, (size_t)(chunks * 2 * d) * sizeof(C), &partial, &block));
    dim3 grid((unsigned)((d + NB_CUDA_THREADS - 1) / NB_CUDA_THREADS), (unsigned)chunks);
    nb_row_norm_param_partials<T><<<grid, NB_CUDA_THREADS, 0, ctx->handle>>>(g, x, stats, (C *)partial, rows,
                                                                           d, per_chunk);
    return add_param_partials<C>(fn, ctx, partial, block, chunks, d, dparams);
}

template <typename T> static nb_status row_norm(const nb_op_args *args, nb_cuda_ctx *ctx) {
    bool backward = args->op == NB_OP_LAYER_NORM_BACKWARD || args->op == NB_OP_RMS_NORM_BACKWARD;
    bool rms = args->op == NB_OP_RMS_NORM || args->op == NB_OP_RMS_NORM_BACKWARD;
    int64_t rows = args->in[3]->shape[0], d = nb_numel(args->out) / rows;
    return backward ? row_norm_backward<T>(args, ctx, rows, d, rms) : row_norm_forward<T>(args, ctx, rows, d, rms);
}

nb_status nb__cuda_layer_norm(const nb_op_args *args) {
    nb_cuda_ctx ctx;
    NB_TRY(nb__cuda_begin(nb__op_fn(args->op), args->out->storage->device.index, &ctx));
    nb_status status = NB_OK;
    NB_CUDA_FLOAT_SWITCH(args->out->dtype, T, status = row_norm<T>(args, &ctx));
    return status;
}
