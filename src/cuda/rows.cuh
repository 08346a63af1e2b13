// Rows held in registers, for the kernels that read a row of a contiguous
// [rows, size] tensor, reduce over it and write it back (softmax, LayerNorm,
// RMSNorm): reading the row once and keeping it in registers halves their
// memory traffic against a second pass through L1/L2.
//
// A team of R threads (a power of two: part of a warp, a warp, or the whole
// block) holds one row; each thread holds K packs of V = 16 / sizeof(T)
// values. Pack k of a thread is pack k * R + lane of the row, so a team's
// loads of pack k are contiguous and 16 bytes each when the rows are aligned
// (`packed`), else element by element. Values past the row's end hold a pad.
#pragma once

#include "map.cuh"

// The most values of compute type A a thread holds: 32 registers' worth.
template <typename A> constexpr int nb_held_values() { return 128 / (int)sizeof(A); }

// The team's row and its place in it. A block runs blockDim.x / R rows at
// once; a team past the last row still takes part in the team's shuffles.
struct nb_row_team {
    int threads, lane, index, per_block;
};

__device__ __forceinline__ nb_row_team nb_row_team_of(int threads) {
    return {threads, (int)(threadIdx.x & (threads - 1)), (int)(threadIdx.x / threads),
            (int)(blockDim.x / threads)};
}

// The first element of pack k of the team's thread.
__device__ __forceinline__ int nb_row_pack_first(const nb_row_team &team, int k, int values) {
    return (k * team.threads + team.lane) * values;
}

// The V values of a row of `size` from element first on (pad past the end).
template <typename T>
__device__ __forceinline__ void nb_row_load_pack(const T *row, int size, bool packed, int first,
                                                 nb_compute_t<T> pad, nb_compute_t<T> (&v)[16 / sizeof(T)]) {
    constexpr int V = 16 / sizeof(T);
    if (packed && first < size) {
        nb_pack<T, V> pack = *(const nb_pack<T, V> *)(row + first);
#pragma unroll
        for (int j = 0; j < V; j++) v[j] = nb_to_compute<nb_compute_t<T>>(pack.v[j]);
    } else {
#pragma unroll
        for (int j = 0; j < V; j++) v[j] = first + j < size ? nb_to_compute<nb_compute_t<T>>(row[first + j]) : pad;
    }
}

template <typename T, int K>
__device__ __forceinline__ void nb_row_load(const T *row, int size, bool packed, const nb_row_team &team,
                                            nb_compute_t<T> pad, nb_compute_t<T> (&v)[K][16 / sizeof(T)]) {
#pragma unroll
    for (int k = 0; k < K; k++) nb_row_load_pack(row, size, packed, nb_row_pack_first(team, k, 16 / sizeof(T)), pad, v[k]);
}

template <typename T, int K>
__device__ __forceinline__ void nb_row_store(T *row, int size, bool packed, const nb_row_team &team,
                                             const nb_compute_t<T> (&v)[K][16 / sizeof(T)]) {
    constexpr int V = 16 / sizeof(T);
#pragma unroll
    for (int k = 0; k < K; k++) {
        int first = nb_row_pack_first(team, k, V);
        if (packed && first < size) {
            nb_pack<T, V> pack;
#pragma unroll
            for (int j = 0; j < V; j++) pack.v[j] = nb_to_storage<T>(v[k][j]);
            *(nb_pack<T, V> *)(row + first) = pack;
        } else {
#pragma unroll
            for (int j = 0; j < V; j++)
                if (first + j < size) row[first + j] = nb_to_storage<T>(v[k][j]);
        }
    }
}

// v merged by op over the team, in every thread of it, in an order fixed by
// the team's size (the same bits on every run). A team wider than a warp is
// the whole block, whose warps meet in partial (32 slots); each call site
// passes its own array, so the next row's writes cannot race this row's
// reads.
template <typename A, typename Op>
__device__ __forceinline__ A nb_row_reduce(A v, const nb_row_team &team, A *partial, Op op) {
    for (int width = (team.threads < 32 ? team.threads : 32) / 2; width > 0; width /= 2)
        v = op(v, __shfl_xor_sync(0xffffffffu, v, width));
    if (team.threads <= 32) return v;
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
    __syncthreads();
    v = partial[0];
    for (int w = 1; w < team.threads / 32; w++) v = op(v, partial[w]);
    return v;
}

struct nb_add_op {
    template <typename A> __device__ A operator()(A a, A b) const { return a + b; }
};
// The larger of two values, NaN ignored (the CPU backends' `v > m ? v : m`).
struct nb_max_op {
    template <typename A> __device__ A operator()(A a, A b) const { return b > a ? b : a; }
};

// How a row of `size` values is spread over a team: R threads with K packs
// each. The team grows (to 1024 threads) until each thread holds at most 4
// packs, enough loads in flight per thread; K is then rounded up to a power
// of two. held is false when the row needs more than max_packs per thread.
struct nb_row_layout {
    int threads, packs;
    bool held;
};

static inline nb_row_layout nb_row_layout_of(int64_t size, int values_per_pack, int max_packs) {
    int64_t packs = (size + values_per_pack - 1) / values_per_pack;
    int threads = 1;
    while (threads < 1024 && (int64_t)threads * 4 < packs) threads *= 2;
    int per_thread = 1;
    while ((int64_t)per_thread * threads < packs) per_thread *= 2;
    return {threads, per_thread, per_thread <= max_packs};
}

// Threads per block for a team of R: teams of up to a warp share 128-thread
// blocks; a wider team is the block.
static inline unsigned nb_row_block_threads(int team_threads) {
    return team_threads > 32 ? (unsigned)team_threads : 128u;
}

// Runs BODY with the compile-time constant K (1, 2, 4 or 8) equal to packs.
#define NB_ROW_PACKS_SWITCH(packs, K, ...)          \
    switch (packs) {                                \
    case 1: { constexpr int K = 1; __VA_ARGS__; break; } \
    case 2: { constexpr int K = 2; __VA_ARGS__; break; } \
    case 4: { constexpr int K = 4; __VA_ARGS__; break; } \
    default: { constexpr int K = 8; __VA_ARGS__; break; } \
    }
