// Runs the fused attention kernels of src/cuda/attention.cuh on the CPU, so
// their indexing, fragments, masking and pipelining are checked on machines
// without a GPU. Every CUDA thread of a block is a host thread; the warp
// instructions the kernels use (ldmatrix, mma.sync m16n8k16, shuffles) meet
// at a per-warp barrier and compute what the PTX ISA specifies for each
// lane; cp.async copies land only when their group is waited for, the
// latest moment the ISA allows, so a read before the wait sees stale data.
// Shared memory starts as NaN bytes. Blocks run one after another.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstring>
#include <deque>
#include <atomic>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

using std::max;
using std::min;

// Set when a kernel breaks an instruction's rule (misaligned addresses).
inline std::atomic<bool> emu_misaligned{false};

struct EmuLane {
    dim3 thread, block, dim, grid;
};
inline thread_local EmuLane emu_lane;

// What the lanes of one warp post for a collective instruction.
struct EmuWarp {
    const void *address[32];
    float value[32];
    uint32_t a[32][4], b[32][2];
};

struct EmuBlock {
    explicit EmuBlock(int threads) : block(threads) {
        for (int w = 0; w < threads / 32; w++) warp_barrier.emplace_back(std::make_unique<std::barrier<>>(32));
    }
    std::barrier<> block;
    std::vector<std::unique_ptr<std::barrier<>>> warp_barrier;
    EmuWarp warps[32];
};
inline EmuBlock *emu_block;

inline int emu_warp() { return (int)emu_lane.thread.x / 32; }
inline int emu_lane_id() { return (int)emu_lane.thread.x % 32; }
inline void emu_warp_sync() { emu_block->warp_barrier[emu_warp()]->arrive_and_wait(); }
inline void emu_syncthreads() { emu_block->block.arrive_and_wait(); }

inline float emu_shfl_xor(float v, int width) {
    EmuWarp &w = emu_block->warps[emu_warp()];
    w.value[emu_lane_id()] = v;
    emu_warp_sync();
    float out = w.value[emu_lane_id() ^ width];
    emu_warp_sync();
    return out;
}

// ldmatrix .x4: lanes 8q .. 8q + 7 give the rows of matrix q; lane l gets
// row l / 4, elements 2 (l % 4) and 2 (l % 4) + 1 of each (.trans: of the
// transpose, column l / 4 of rows 2 (l % 4) and 2 (l % 4) + 1).
inline void nb_emu_ldmatrix(uint32_t (&r)[4], const void *row, bool transpose) {
    if ((uintptr_t)row % 16) emu_misaligned = true;
    EmuWarp &w = emu_block->warps[emu_warp()];
    int lane = emu_lane_id();
    w.address[lane] = row;
    emu_warp_sync();
    for (int q = 0; q < 4; q++) {
        uint16_t lo, hi;
        if (!transpose) {
            const uint16_t *source = (const uint16_t *)w.address[8 * q + lane / 4];
            lo = source[2 * (lane % 4)], hi = source[2 * (lane % 4) + 1];
        } else {
            lo = ((const uint16_t *)w.address[8 * q + 2 * (lane % 4)])[lane / 4];
            hi = ((const uint16_t *)w.address[8 * q + 2 * (lane % 4) + 1])[lane / 4];
        }
        r[q] = (uint32_t)lo | (uint32_t)hi << 16;
    }
    emu_warp_sync();
}

template <typename T> float emu_half_value(uint16_t bits) {
    if constexpr (std::is_same<T, __half>::value) {
        __half_raw raw;
        raw.x = bits;
        return __half2float(__half(raw));
    } else {
        __nv_bfloat16_raw raw;
        raw.x = bits;
        return __bfloat162float(__nv_bfloat16(raw));
    }
}

// mma.sync m16n8k16 .row.col with f32 accumulators: lane l (g = l / 4,
// t = l % 4) holds A at rows g, g + 8 and columns 2t, 2t + 1 (+ 8 for a[2],
// a[3]), B at rows 2t, 2t + 1 (+ 8 for b1) of column g, and C/D at rows g,
// g + 8 and columns 2t, 2t + 1.
template <typename T>
void nb_emu_mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    EmuWarp &w = emu_block->warps[emu_warp()];
    int lane = emu_lane_id();
    std::memcpy(w.a[lane], a, sizeof a);
    w.b[lane][0] = b0, w.b[lane][1] = b1;
    emu_warp_sync();
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; l++) {
        int g = l / 4, t = l % 4;
        for (int h = 0; h < 2; h++) {
            A[g][2 * t + h] = emu_half_value<T>((uint16_t)(w.a[l][0] >> 16 * h));
            A[g + 8][2 * t + h] = emu_half_value<T>((uint16_t)(w.a[l][1] >> 16 * h));
            A[g][2 * t + 8 + h] = emu_half_value<T>((uint16_t)(w.a[l][2] >> 16 * h));
            A[g + 8][2 * t + 8 + h] = emu_half_value<T>((uint16_t)(w.a[l][3] >> 16 * h));
            B[2 * t + h][g] = emu_half_value<T>((uint16_t)(w.b[l][0] >> 16 * h));
            B[2 * t + 8 + h][g] = emu_half_value<T>((uint16_t)(w.b[l][1] >> 16 * h));
        }
    }
    int g = lane / 4, t = lane % 4;
    for (int e = 0; e < 4; e++) {
        int row = g + 8 * (e / 2), col = 2 * t + e % 2;
        float sum = c[e];
        for (int k = 0; k < 16; k++) sum += A[row][k] * B[k][col];
        c[e] = sum;
    }
    emu_warp_sync();
}

// cp.async: each thread's copies wait in groups until a wait_group.
struct EmuCopy {
    void *dst;
    const void *src;
    int bytes;
};
inline thread_local std::vector<EmuCopy> emu_open_group;
inline thread_local std::deque<std::vector<EmuCopy>> emu_committed;

inline void nb_emu_copy16_async(void *dst, const void *src, int bytes) {
    if ((uintptr_t)dst % 16 || (uintptr_t)src % 16) emu_misaligned = true;
    emu_open_group.push_back({dst, src, bytes});
}
inline void nb_emu_commit_async() {
    emu_committed.push_back(std::move(emu_open_group));
    emu_open_group.clear();
}
inline void nb_emu_wait_async(int pending) {
    while ((int)emu_committed.size() > pending) {
        for (const EmuCopy &c : emu_committed.front()) {
            std::memset(c.dst, 0, 16);
            std::memcpy(c.dst, c.src, (size_t)c.bytes);
        }
        emu_committed.pop_front();
    }
}

// The kernels' view of CUDA.
inline unsigned long long atomicCAS(unsigned long long *at, unsigned long long expected,
                                    unsigned long long desired) {
    __atomic_compare_exchange_n(at, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return expected;
}
inline float atomicAdd(float *at, float v) { return std::atomic_ref<float>(*at).fetch_add(v); }
inline size_t __cvta_generic_to_shared(const void *p) { return (size_t)p; }
#define NB_WARP_EMULATOR
#define threadIdx (emu_lane.thread)
#define blockIdx (emu_lane.block)
#define blockDim (emu_lane.dim)
#define gridDim (emu_lane.grid)
#define __syncthreads() emu_syncthreads()
#define __shfl_xor_sync(mask, v, width) emu_shfl_xor((v), (width))
#define __expf(x) expf(x)
#undef __global__
#define __global__
#undef __shared__
#define __shared__
#undef __launch_bounds__
#define __launch_bounds__(...)

// Runs kernel() as blocks x threads CUDA threads over the shared array
// (filled with NaN bytes before each block).
template <typename Kernel>
void emu_launch(int64_t blocks, int threads, void *shared, size_t shared_bytes, Kernel kernel) {
    for (int64_t b = 0; b < blocks; b++) {
        std::memset(shared, 0xFF, shared_bytes);
        EmuBlock block(threads);
        emu_block = &block;
        std::vector<std::thread> lanes;
        for (int t = 0; t < threads; t++)
            lanes.emplace_back([&, t] {
                emu_lane = {dim3((unsigned)t), dim3((unsigned)b), dim3((unsigned)threads), dim3((unsigned)blocks)};
                emu_open_group.clear();
                emu_committed.clear();
                kernel();
            });
        for (std::thread &lane : lanes) lane.join();
        emu_block = nullptr;
    }
}
