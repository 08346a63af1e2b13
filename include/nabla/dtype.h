/* Element types and the conversions between them.
 *
 *   uint16_t h = nb_f32_to_f16(0.1f);   // round to nearest, ties to even
 *   float back = nb_f16_to_f32(h);      // 0.0999755859375
 */
#ifndef NABLA_DTYPE_H
#define NABLA_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nb_dtype {
    NB_F32,
    NB_F64,
    NB_F16,
    NB_BF16,
    NB_I32,
    NB_I64,
    NB_U8,
    NB_BOOL,
    NB_DTYPE_COUNT
} nb_dtype;

size_t nb_dtype_size(nb_dtype dtype);        /* bytes per element, 0 if invalid */
const char *nb_dtype_name(nb_dtype dtype);   /* "f32", ..., "invalid dtype 42" */
bool nb_dtype_is_float(nb_dtype dtype);      /* f32, f64, f16, bf16 */
bool nb_dtype_is_valid(nb_dtype dtype);

/* The dtype two operands of a binary op compute in, as in PyTorch: a float
 * beats an integer, the wider type wins, f16 with bf16 gives f32, bool is the
 * narrowest integer. */
nb_dtype nb_promote_types(nb_dtype a, nb_dtype b); /* NB_DTYPE_COUNT if either is invalid */

/* IEEE half and bfloat16, rounding to nearest even; NaN stays NaN. */
uint16_t nb_f32_to_f16(float value);
float nb_f16_to_f32(uint16_t bits);
uint16_t nb_f32_to_bf16(float value);
float nb_bf16_to_f32(uint16_t bits);

#ifdef __cplusplus
}
#endif
#endif
