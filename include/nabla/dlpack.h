/* Tensors shared without a copy with any DLPack consumer or producer
 * (PyTorch, numpy, JAX, CuPy...), through the DLManagedTensor of DLPack's
 * header (Debian's libdlpack-dev). Included by itself, not by nabla.h, so
 * that only programs that exchange tensors need that header.
 *
 *   DLManagedTensor *m;
 *   nb_to_dlpack(t, &m);        // m shares t's memory; m->deleter releases it
 *   nb_tensor *u;
 *   nb_from_dlpack(m, &u);      // u shares m's memory; m->deleter runs when u's storage goes
 *
 * Shapes, strides (in elements), dtypes (f32, f64, f16, bf16, i32, i64,
 * u8, bool) and devices (the CPU, CUDA devices) carry over as they are;
 * gradients do not (an exported tensor is its data). Whatever DLPack
 * describes that nabla cannot hold (other dtypes, vector lanes, negative
 * strides, misaligned data, other devices) is an error with a message, and
 * nb_from_dlpack then takes nothing: the caller still owns m. */
#ifndef NABLA_DLPACK_H
#define NABLA_DLPACK_H

#include <dlpack/dlpack.h>

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

nb_status nb_to_dlpack(const nb_tensor *t, DLManagedTensor **out);
nb_status nb_from_dlpack(DLManagedTensor *managed, nb_tensor **out);

#ifdef __cplusplus
}
#endif
#endif
