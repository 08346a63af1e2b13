/* The activations with parameters and their derivatives, written once for
 * the CPU (C, where <tgmath.h> picks expf for a float) and CUDA (C++, where
 * the overloads do): nb_act_f32_* computes in float, nb_act_f64_* in
 * double. p and q are the op's parameters (nb_attrs.activation).
 *
 *   elu         x > 0 ? x : p (e^x - 1)                     p = alpha
 *   selu        SELU_SCALE elu(x) with p = SELU_ALPHA        (Klambauer et al., 2017)
 *   celu        max(0, x) + min(0, p (e^(x/p) - 1))          p = alpha
 *   softplus    p x > q ? x : log1p(e^(p x)) / p             p = beta, q = threshold
 *   mish        x tanh(softplus(x))                          (Misra, 2019)
 *   swish       x sigmoid(p x)                               p = beta; silu is beta 1
 *   softsign    x / (1 + |x|)
 *   logsigmoid  min(x, 0) - log1p(e^-|x|)
 *   threshold   x <= p ? q : x                               p = threshold, q = value
 *   hardtanh    min(max(x, p), q)                            p = min_val, q = max_val
 *   tanhshrink  x - tanh(x)
 *   hardshrink  -p <= x <= p ? 0 : x                         p = lambda
 *   softshrink  x > p ? x - p : x < -p ? x + p : 0           p = lambda
 *
 * NaN passes through each (its gradient g too where PyTorch's does: the
 * comparisons are PyTorch's, so NaN falls on the same side). The ELUs take
 * e^x - 1 as PyTorch does: libm's expm1 costs several times exp, and the
 * result differs from it by an ulp of 1 near 0. */
#ifndef NABLA_ACTIVATION_H
#define NABLA_ACTIVATION_H

#include "oplist.h"

#if defined(__CUDACC__)
#include <cmath>
#define NB_ACT_HD __host__ __device__ __forceinline__
#else
#include <tgmath.h>
#define NB_ACT_HD static inline __attribute__((always_inline))
#endif

#define NB_SELU_ALPHA 1.6732632423543772848170429916717
#define NB_SELU_SCALE 1.0507009873554804934193349852946

#define NB_DEFINE_ACTIVATIONS(T, name)                                                          \
    /* log(1 + e^x) without overflow */                                                         \
    NB_ACT_HD T name##_softplus(T x) { return x > 20 ? x : log1p(exp(x)); }                      \
    NB_ACT_HD T name##_sigmoid(T x) { return (T)1 / ((T)1 + exp(-x)); }                          \
    NB_ACT_HD T name##_forward(nb_op op, T x, T p, T q) {                                       \
        switch (op) {                                                                           \
        case NB_OP_ELU: return x > 0 ? x : p * (exp(x) - 1);                                    \
        case NB_OP_SELU: return (T)NB_SELU_SCALE * (x > 0 ? x : (T)NB_SELU_ALPHA * (exp(x) - 1)); \
        case NB_OP_CELU: return x > 0 ? x : p * (exp(x / p) - 1);                               \
        case NB_OP_SOFTPLUS: return p * x > q ? x : log1p(exp(p * x)) / p;                      \
        case NB_OP_MISH: return x * tanh(name##_softplus(x));                                   \
        case NB_OP_SWISH: return x * name##_sigmoid(p * x);                                     \
        case NB_OP_SOFTSIGN: return x / (1 + fabs(x));                                          \
        case NB_OP_LOGSIGMOID: return (x < 0 ? x : (T)0) - log1p(exp(-fabs(x)));                \
        case NB_OP_THRESHOLD: return x <= p ? q : x;                                            \
        case NB_OP_HARDTANH: return x < p ? p : x > q ? q : x;                                  \
        case NB_OP_TANHSHRINK: return x - tanh(x);                                              \
        case NB_OP_HARDSHRINK: return x >= -p && x <= p ? (T)0 : x;                             \
        default: return x > p ? x - p : x < -p ? x + p : x * 0; /* softshrink */                \
        }                                                                                       \
    }                                                                                           \
    /* d forward / dx, times g */                                                               \
    NB_ACT_HD T name##_backward(nb_op op, T g, T x, T p, T q) {                                 \
        switch (op) {                                                                           \
        case NB_OP_ELU: return x > 0 ? g : g * p * exp(x);                                      \
        case NB_OP_SELU: return g * (T)NB_SELU_SCALE * (x > 0 ? (T)1 : (T)NB_SELU_ALPHA * exp(x)); \
        case NB_OP_CELU: return x > 0 ? g : g * exp(x / p);                                     \
        case NB_OP_SOFTPLUS: return p * x > q ? g : g * name##_sigmoid(p * x);                  \
        case NB_OP_MISH: {                                                                      \
            T t = tanh(name##_softplus(x));                                                     \
            return g * (t + x * name##_sigmoid(x) * (1 - t * t));                               \
        }                                                                                       \
        case NB_OP_SWISH: {                                                                     \
            T s = name##_sigmoid(p * x);                                                        \
            return g * (s + p * x * s * (1 - s));                                               \
        }                                                                                       \
        case NB_OP_SOFTSIGN: {                                                                  \
            T d = 1 + fabs(x);                                                                  \
            return g / (d * d);                                                                 \
        }                                                                                       \
        case NB_OP_LOGSIGMOID: return g * name##_sigmoid(-x);                                   \
        case NB_OP_THRESHOLD: return x <= p ? (T)0 : g;                                         \
        case NB_OP_HARDTANH: return x <= p || x >= q ? (T)0 : g;                                \
        case NB_OP_TANHSHRINK: {                                                                \
            T t = tanh(x);                                                                      \
            return g * t * t;                                                                   \
        }                                                                                       \
        default: return x >= -p && x <= p ? (T)0 : g; /* hardshrink and softshrink */           \
        }                                                                                       \
    }

NB_DEFINE_ACTIVATIONS(float, nb_act_f32)
NB_DEFINE_ACTIVATIONS(double, nb_act_f64)

/* The ops computed here, for the kernels' case lists. */
#define NB_ACTIVATION_OPS(X)                                                                  \
    X(ELU) X(SELU) X(CELU) X(SOFTPLUS) X(MISH) X(SWISH) X(SOFTSIGN) X(LOGSIGMOID) X(THRESHOLD) \
    X(HARDTANH) X(TANHSHRINK) X(HARDSHRINK) X(SOFTSHRINK)

#endif
