// Online softmax statistics (Milakov and Gimelshein, "Online normalizer
// calculation for softmax", 2018): a running (max, sum of exp(x - max)) that
// folds one value at a time and merges with another in any order, and block
// reductions of it, for softmax and cross-entropy (plain block sums are
// nb_block_sum in cuda.cuh).
#pragma once

#include "cuda.cuh"

template <typename A> struct nb_running {
    A max, sum;
};

template <typename A> __device__ __forceinline__ nb_running<A> nb_running_add(nb_running<A> r, A v) {
    if (v > r.max) {
        r.sum = r.sum * exp(r.max - v) + (A)1;
        r.max = v;
    } else if (v == v && v != -(A)INFINITY) {
        r.sum += exp(v - r.max);
    } else if (v != v) {
        r.sum = v; // NaN spreads to the whole row, as on the CPU
    }
    return r;
}

template <typename A>
__device__ __forceinline__ nb_running<A> nb_running_merge(nb_running<A> a, nb_running<A> b) {
    A max = a.max > b.max ? a.max : b.max;
    if (max == -(A)INFINITY) return {max, a.sum + b.sum};
    return {max, a.sum * exp(a.max - max) + b.sum * exp(b.max - max)};
}

// The pair of the whole block, in every thread.
template <typename A> __device__ nb_running<A> nb_block_running(nb_running<A> r) {
    __shared__ A maxes[32], sums[32];
    for (int width = 16; width > 0; width /= 2) {
        nb_running<A> other = {__shfl_down_sync(0xffffffffu, r.max, width),
                               __shfl_down_sync(0xffffffffu, r.sum, width)};
        r = nb_running_merge(r, other);
    }
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    if (lane == 0) {
        maxes[warp] = r.max;
        sums[warp] = r.sum;
    }
    __syncthreads();
    r = {maxes[0], sums[0]};
    for (int w = 1; w < warps; w++) r = nb_running_merge(r, nb_running<A>{maxes[w], sums[w]});
    __syncthreads(); // the arrays are reused by the next row
    return r;
}
