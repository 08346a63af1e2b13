/* Dtype conversion loops and the elementwise engine of the CPU backend. */
#include <math.h>
#include <string.h>

#include "cpu.h"

nb_dtype nb__cpu_compute_dtype(nb_dtype d) {
    if (d == NB_F64) return NB_F64;
    return nb_dtype_is_float(d) ? NB_F32 : NB_I64;
}

/* ---- conversions ----
 * Each dtype reads as a double (to_f) or an int64 (to_i) and writes from
 * either (from_f, from_i). A pair converts through double when either side is
 * a float, else through int64. Float to integer saturates (NaN gives 0) and
 * integer to a narrower integer wraps, so no conversion is undefined. */

static inline int64_t saturate_i64(double v) {
    if (v != v) return 0;
    if (v >= 0x1p63) return INT64_MAX;
    if (v < -0x1p63) return INT64_MIN;
    return (int64_t)v;
}

typedef float ct_F32;
typedef double ct_F64;
typedef uint16_t ct_F16;
typedef uint16_t ct_BF16;
typedef int32_t ct_I32;
typedef int64_t ct_I64;
typedef uint8_t ct_U8;
typedef bool ct_BOOL;

enum { float_F32 = 1, float_F64 = 1, float_F16 = 1, float_BF16 = 1,
       float_I32 = 0, float_I64 = 0, float_U8 = 0, float_BOOL = 0 };

static inline double F32_to_f(float v) { return v; }
static inline double F64_to_f(double v) { return v; }
static inline double F16_to_f(uint16_t v) { return nb_f16_to_f32(v); }
static inline double BF16_to_f(uint16_t v) { return nb_bf16_to_f32(v); }
static inline double I32_to_f(int32_t v) { return v; }
static inline double I64_to_f(int64_t v) { return (double)v; }
static inline double U8_to_f(uint8_t v) { return v; }
static inline double BOOL_to_f(bool v) { return v; }

static inline int64_t F32_to_i(float v) { return saturate_i64(v); }
static inline int64_t F64_to_i(double v) { return saturate_i64(v); }
static inline int64_t F16_to_i(uint16_t v) { return saturate_i64(nb_f16_to_f32(v)); }
static inline int64_t BF16_to_i(uint16_t v) { return saturate_i64(nb_bf16_to_f32(v)); }
static inline int64_t I32_to_i(int32_t v) { return v; }
static inline int64_t I64_to_i(int64_t v) { return v; }
static inline int64_t U8_to_i(uint8_t v) { return v; }
static inline int64_t BOOL_to_i(bool v) { return v; }

static inline float F32_from_f(double v) { return (float)v; }
static inline double F64_from_f(double v) { return v; }
static inline uint16_t F16_from_f(double v) { return nb_f32_to_f16((float)v); }
static inline uint16_t BF16_from_f(double v) { return nb_f32_to_bf16((float)v); }
static inline int32_t I32_from_i(int64_t v) { return (int32_t)(uint32_t)(uint64_t)v; }
static inline int64_t I64_from_i(int64_t v) { return v; }
static inline uint8_t U8_from_i(int64_t v) { return (uint8_t)(uint64_t)v; }
static inline bool BOOL_from_i(int64_t v) { return v != 0; }
static inline int32_t I32_from_f(double v) {
    if (v != v) return 0;
    return v >= 0x1p31 ? INT32_MAX : v < -0x1p31 ? INT32_MIN : (int32_t)v;
}
static inline int64_t I64_from_f(double v) { return saturate_i64(v); }
static inline uint8_t U8_from_f(double v) { return U8_from_i(saturate_i64(v)); }
static inline bool BOOL_from_f(double v) { return v != 0; }
static inline float F32_from_i(int64_t v) { return (float)v; }
static inline double F64_from_i(int64_t v) { return (double)v; }
static inline uint16_t F16_from_i(int64_t v) { return nb_f32_to_f16((float)v); }
static inline uint16_t BF16_from_i(int64_t v) { return nb_f32_to_bf16((float)v); }

#define NB_CPU_TYPES_A(X, ...) \
    X(F32, __VA_ARGS__) X(F64, __VA_ARGS__) X(F16, __VA_ARGS__) X(BF16, __VA_ARGS__) \
    X(I32, __VA_ARGS__) X(I64, __VA_ARGS__) X(U8, __VA_ARGS__) X(BOOL, __VA_ARGS__)
#define NB_CPU_TYPES_B(X, ...) \
    X(F32, __VA_ARGS__) X(F64, __VA_ARGS__) X(F16, __VA_ARGS__) X(BF16, __VA_ARGS__) \
    X(I32, __VA_ARGS__) X(I64, __VA_ARGS__) X(U8, __VA_ARGS__) X(BOOL, __VA_ARGS__)

typedef void (*convert_fn)(void *dst, int64_t ds, const void *src, int64_t ss, int64_t n);

#define CONVERT_ONE(DST, SRC, v)                                                          \
    ((float_##SRC || float_##DST) ? DST##_from_f(SRC##_to_f(v)) : DST##_from_i(SRC##_to_i(v)))
#define DEFINE_CONVERT(DST, SRC)                                                          \
    static void convert_##SRC##_to_##DST(void *dst, int64_t ds, const void *src,          \
                                         int64_t ss, int64_t n) {                         \
        ct_##DST *o = dst;                                                                \
        const ct_##SRC *in = src;                                                         \
        if (ds == 1 && ss == 1) { /* the common case, as a loop that vectorizes */         \
            for (int64_t i = 0; i < n; i++) o[i] = CONVERT_ONE(DST, SRC, in[i]);          \
            return;                                                                       \
        }                                                                                 \
        for (int64_t i = 0; i < n; i++) o[i * ds] = CONVERT_ONE(DST, SRC, in[i * ss]);    \
    }
#define DEFINE_CONVERTS_TO(DST, unused) NB_CPU_TYPES_B(DEFINE_CONVERT, DST)
NB_CPU_TYPES_A(DEFINE_CONVERTS_TO, unused)

#define CONVERT_ENTRY(SRC, DST) [NB_##SRC] = convert_##SRC##_to_##DST,
#define CONVERT_ROW(DST, unused) [NB_##DST] = {NB_CPU_TYPES_B(CONVERT_ENTRY, DST)},
static const convert_fn convert_table[NB_DTYPE_COUNT][NB_DTYPE_COUNT] = {
    NB_CPU_TYPES_A(CONVERT_ROW, unused)};

void nb__cpu_convert(nb_dtype dst_dtype, void *dst, int64_t dst_stride, nb_dtype src_dtype,
                     const void *src, int64_t src_stride, int64_t n) {
    size_t size = nb_dtype_size(dst_dtype);
    if (dst_dtype == src_dtype && dst_stride == 1 && src_stride == 1) {
        memcpy(dst, src, (size_t)n * size);
        return;
    }
    if (dst_stride == 1 && src_stride == 0 && n > 1) { /* a broadcast value: convert it once */
        convert_table[dst_dtype][src_dtype](dst, 1, src, 0, 1);
        for (int64_t filled = 1; filled < n; filled *= 2) /* then double the copies */
            memcpy((char *)dst + filled * (int64_t)size, dst,
                   (size_t)(filled < n - filled ? filled : n - filled) * size);
        return;
    }
    convert_table[dst_dtype][src_dtype](dst, dst_stride, src, src_stride, n);
}

/* ---- the elementwise engine ---- */

static void map_chunk(const nb_map_plan *plan, const nb_op_args *args, nb_dtype compute,
                      nb_map_fn fn, int64_t row, int64_t start, int64_t len) {
    _Alignas(64) char buffers[NB_MAX_INPUTS + 1][NB_CPU_CHUNK * sizeof(double)];
    int last = plan->ndim - 1;
    char *ptr[NB_MAX_INPUTS + 1];
    for (int k = 0; k < plan->n_operands; k++) {
        int64_t offset = start * plan->strides[k][last];
        int64_t rest = row;
        for (int d = last - 1; d >= 0; d--) {
            offset += (rest % plan->shape[d]) * plan->strides[k][d];
            rest /= plan->shape[d];
        }
        ptr[k] = plan->base[k] + offset * (int64_t)nb_dtype_size(plan->dtype[k]);
    }
    const void *in[NB_MAX_INPUTS];
    for (int k = 1; k < plan->n_operands; k++) {
        int64_t stride = plan->strides[k][last];
        if (plan->dtype[k] == compute && stride == 1) {
            in[k - 1] = ptr[k];
        } else {
            nb__cpu_convert(compute, buffers[k], 1, plan->dtype[k], ptr[k], stride, len);
            in[k - 1] = buffers[k];
        }
    }
    bool direct = plan->dtype[0] == compute && plan->strides[0][last] == 1;
    void *out = direct ? (void *)ptr[0] : (void *)buffers[0];
    fn(len, out, in, args);
    if (!direct)
        nb__cpu_convert(plan->dtype[0], ptr[0], plan->strides[0][last], compute, buffers[0], 1, len);
}

/* Work item `item` is chunk (item % chunks_per_row) of row (item / chunks_per_row). */
static void map_item(const nb_map_plan *plan, const nb_op_args *args, nb_dtype compute, nb_map_fn fn,
                     int64_t item, int64_t chunks_per_row) {
    int64_t row_len = plan->shape[plan->ndim - 1];
    int64_t start = (item % chunks_per_row) * NB_CPU_CHUNK;
    int64_t len = row_len - start < NB_CPU_CHUNK ? row_len - start : NB_CPU_CHUNK;
    map_chunk(plan, args, compute, fn, item / chunks_per_row, start, len);
}

void nb__cpu_map(const nb_op_args *args, nb_dtype compute, nb_map_fn fn) {
    nb_map_plan plan;
    nb__plan_map(args, &plan);
    int64_t row_len = plan.shape[plan.ndim - 1];
    int64_t rows = nb__numel(plan.ndim - 1, plan.shape);
    int64_t chunks_per_row = (row_len + NB_CPU_CHUNK - 1) / NB_CPU_CHUNK;
    int64_t items = rows * chunks_per_row;
    if (rows * row_len < NB_CPU_PARALLEL_MIN) { /* small work: no thread team to start */
        for (int64_t item = 0; item < items; item++)
            map_item(&plan, args, compute, fn, item, chunks_per_row);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t item = 0; item < items; item++)
        map_item(&plan, args, compute, fn, item, chunks_per_row);
}

const void *nb__cpu_plane(const nb_tensor *t, int64_t n, int64_t c, nb_dtype as, void *buffer) {
    if (t->dtype == as && t->strides[3] == 1 && t->strides[2] == t->shape[3])
        return nb__data(t) + (n * t->strides[0] + c * t->strides[1]) * (int64_t)nb_dtype_size(as);
    nb__cpu_load_plane(t, n, c, as, buffer);
    return buffer;
}

void nb__cpu_load_plane(const nb_tensor *t, int64_t n, int64_t c, nb_dtype as, void *plane) {
    size_t size = nb_dtype_size(t->dtype), plane_size = nb_dtype_size(as);
    if (t->strides[3] == 1 && t->strides[2] == t->shape[3]) { /* a dense plane: one call */
        nb__cpu_convert(as, plane, 1, t->dtype,
                        nb__data(t) + (n * t->strides[0] + c * t->strides[1]) * (int64_t)size, 1,
                        t->shape[2] * t->shape[3]);
        return;
    }
    for (int64_t y = 0; y < t->shape[2]; y++)
        nb__cpu_convert(as, (char *)plane + y * t->shape[3] * (int64_t)plane_size, 1, t->dtype,
                        nb__data(t) + (n * t->strides[0] + c * t->strides[1] + y * t->strides[2]) *
                                          (int64_t)size,
                        t->strides[3], t->shape[3]);
}
