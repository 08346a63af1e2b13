/* Element sizes, names, type promotion and the 16-bit float conversions. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static const char *const dtype_names[NB_DTYPE_COUNT] = {"f32", "f64", "f16", "bf16",
                                                        "i32", "i64", "u8",  "bool"};

bool nb_dtype_is_valid(nb_dtype dtype) { return (unsigned)dtype < NB_DTYPE_COUNT; }

size_t nb_dtype_size(nb_dtype dtype) { return nb_dtype_is_valid(dtype) ? nb__dtype_size(dtype) : 0; }

const char *nb_dtype_name(nb_dtype dtype) {
    if (nb_dtype_is_valid(dtype)) return dtype_names[dtype];
    static _Thread_local char ring[4][32]; /* a few per message */
    static _Thread_local int next;
    char *name = ring[next++ % 4];
    snprintf(name, sizeof ring[0], "invalid dtype %d", (int)dtype);
    return name;
}

void nb__integer_range(nb_dtype dtype, double *lo, double *hi) {
    switch (dtype) {
    case NB_F64: case NB_I64: *lo = -0x1p53, *hi = 0x1p53; break;
    case NB_F32: *lo = -0x1p24, *hi = 0x1p24; break;
    case NB_F16: *lo = -2048, *hi = 2048; break;
    case NB_BF16: *lo = -256, *hi = 256; break;
    case NB_I32: *lo = -0x1p31, *hi = 0x1p31 - 1; break;
    case NB_U8: *lo = 0, *hi = 255; break;
    default: *lo = 0, *hi = 1; break; /* bool */
    }
}

nb_status nb__check_value(const char *fn, double value, nb_dtype dtype) {
    double lo, hi;
    switch (dtype) {
    case NB_I32: lo = -0x1p31, hi = 0x1p31 - 1; break;
    case NB_I64: lo = -0x1p63, hi = 0x1p63 - 1024; break; /* the largest double below 2^63 */
    case NB_U8: lo = 0, hi = 255; break;
    default: return NB_OK; /* floats round; bool is value != 0 */
    }
    NB_CHECK(value >= lo && value < hi + 1, NB_ERR_INVALID,
             "%s: the value %g does not fit %s (whose values are [%.0f, %.0f])", fn, value,
             nb_dtype_name(dtype), lo, hi);
    return NB_OK;
}

bool nb_dtype_is_float(nb_dtype dtype) {
    return dtype == NB_F32 || dtype == NB_F64 || dtype == NB_F16 || dtype == NB_BF16;
}

/* Rank within a kind: a wider type has a higher rank. */
static int promotion_rank(nb_dtype d) {
    switch (d) {
    case NB_BOOL: return 0;
    case NB_U8: return 1;
    case NB_I32: return 2;
    case NB_I64: return 3;
    case NB_F16: case NB_BF16: return 4;
    case NB_F32: return 5;
    case NB_F64: return 6;
    default: return -1;
    }
}

nb_dtype nb_promote_types(nb_dtype a, nb_dtype b) {
    if (!nb_dtype_is_valid(a) || !nb_dtype_is_valid(b)) return NB_DTYPE_COUNT;
    if (a == b) return a;
    if ((a == NB_F16 && b == NB_BF16) || (a == NB_BF16 && b == NB_F16)) return NB_F32;
    return promotion_rank(a) >= promotion_rank(b) ? a : b;
}

static uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* IEEE 754 binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
uint16_t nb_f32_to_f16(float value) {
    uint32_t x = float_bits(value);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t abs = x & 0x7fffffffu;
    if (abs >= 0x7f800000u) /* Inf stays Inf; NaN keeps a quiet payload bit */
        return sign | (abs > 0x7f800000u ? 0x7e00u : 0x7c00u);
    if (abs >= 0x477ff000u) /* rounds to at least 65520: overflow to Inf */
        return sign | 0x7c00u;
    if (abs < 0x38800000u) {
        /* Result is subnormal (or zero): the float plus 0.5 lands the half's
         * mantissa, rounded to nearest even by the FPU, in the low bits. */
        float shifted = bits_float(abs) + 0.5f;
        return sign | (uint16_t)(float_bits(shifted) - 0x3f000000u);
    }
    /* Normal: rebias the exponent (127 -> 15) and round the 13 dropped bits to
     * nearest, ties to even. */
    uint32_t mant_odd = (abs >> 13) & 1u;
    abs += 0xc8000fffu + mant_odd; /* (15 - 127) << 23, plus the rounding bias */
    return sign | (uint16_t)(abs >> 13);
}

float nb_f16_to_f32(uint16_t bits) {
    uint32_t sign = (uint32_t)(bits & 0x8000u) << 16;
    uint32_t exp = (bits >> 10) & 0x1fu;
    uint32_t mant = bits & 0x3ffu;
    if (exp == 0x1fu) return bits_float(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) { /* zero or subnormal: mant * 2^-24 */
        float mag = (float)mant * 0x1p-24f;
        return sign ? -mag : mag;
    }
    return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

/* bfloat16 is the top half of a float: round the low 16 bits to nearest even. */
uint16_t nb_f32_to_bf16(float value) {
    uint32_t x = float_bits(value);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x0040u);
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

float nb_bf16_to_f32(uint16_t bits) { return bits_float((uint32_t)bits << 16); }
