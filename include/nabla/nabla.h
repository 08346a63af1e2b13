/* nabla: a deep learning framework in C. Include this header for everything.
 *
 *   #include <nabla/nabla.h>
 *   int64_t shape[2] = {3, 4};
 *   nb_tensor *x = nb_normal(2, shape, 0, 1, NB_F32, nb_cpu(), NULL);
 *   nb_tensor *y = nb_softmax(x, -1);
 *   nb_print(y);
 *   nb_release(y);
 *   nb_release(x);
 */
#ifndef NABLA_NABLA_H
#define NABLA_NABLA_H

#include "autograd.h"
#include "cuda.h"
#include "data.h"
#include "dist.h"
#include "dtype.h"
#include "io.h"
#include "nn.h"
#include "optim.h"
#include "ops.h"
#include "random.h"
#include "status.h"
#include "tensor.h"

#define NB_VERSION_MAJOR 0
#define NB_VERSION_MINOR 1
#define NB_VERSION_PATCH 0

#ifdef __cplusplus
extern "C" {
#endif

/* "0.1.0" */
const char *nb_version(void);

#ifdef __cplusplus
}
#endif
#endif
