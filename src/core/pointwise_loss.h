/* The elementwise losses and their derivatives, written once for the CPU (C,
 * <tgmath.h>) and CUDA (C++ overloads) as activation.h is: nb_loss_f32_* in
 * float, nb_loss_f64_* in double. x is the input, y the target, c a third
 * operand (pos_weight, var; 1 where the loss has none), p a setting (delta,
 * beta, eps) and flags the loss's switches (NB_LOSS_*). PyTorch's
 * definitions, Keras's where PyTorch has none; docs/ops.md has the table.
 *
 *   binary_cross_entropy   -(y log x + (1 - y) log(1 - x)), each log >= -100
 *   bce_with_logits        (1 - y) x + (1 + (c - 1) y) softplus(-x)      c = pos_weight
 *   mse                    (x - y)^2
 *   l1                     |x - y|
 *   huber                  |d| < p ? d^2 / 2 : p (|d| - p / 2)           p = delta
 *   smooth_l1              |d| < p ? d^2 / (2 p) : |d| - p / 2           p = beta (0: l1)
 *   log_cosh               log(cosh(d)) = |d| + log1p(e^(-2|d|)) - log 2  (Keras)
 *   mape                   100 |d| / max(|y|, 1e-7)                       (Keras)
 *   msle                   (log1p(max(x, 1e-7)) - log1p(max(y, 1e-7)))^2   (Keras)
 *   poisson_nll            e^x - y x (LOG_INPUT), else x - y log(x + p); FULL adds
 *                          y log y - y + log(2 pi y) / 2 where y > 1      p = eps
 *   gaussian_nll           (log v + d^2 / v) / 2, v = max(c, p) (FULL adds log(2 pi) / 2)
 *   kl_div                 y (log y - x) (0 where y = 0), or e^y (y - x) with LOG_TARGET
 *   hinge                  max(0, 1 - y x), y in {-1, 1}                  (Keras)
 *   squared_hinge          max(0, 1 - y x)^2                              (Keras)
 *   margin_ranking         max(0, p - c (x - y)): x, y the two inputs, c the labels, p = margin
 *   sigmoid_focal          a_t (1 - p_t)^q bce_with_logits(x, y) with s = sigmoid(x),
 *                          p_t = s y + (1 - s)(1 - y) and a_t = p y + (1 - p)(1 - y), or 1
 *                          for p < 0 (Lin et al., 2017; torchvision's sigmoid_focal_loss)
 *                          p = alpha, q = gamma
 * with d = x - y. */
#ifndef NABLA_POINTWISE_LOSS_H
#define NABLA_POINTWISE_LOSS_H

#include "oplist.h"

#if defined(__CUDACC__)
#include <cmath>
#define NB_LOSS_HD __host__ __device__ __forceinline__
#else
#include <stdbool.h>
#include <tgmath.h>
#define NB_LOSS_HD static inline __attribute__((always_inline))
#endif

enum { NB_LOSS_LOG_INPUT = 1, NB_LOSS_FULL = 2, NB_LOSS_LOG_TARGET = 4 };
#define NB_LOSS_EPSILON 1e-7 /* Keras's backend epsilon */
#define NB_LOG_2PI 1.8378770664093454835606594728112

#define NB_DEFINE_LOSSES(T, name)                                                               \
    NB_LOSS_HD T name##_sign(T v) { return v > 0 ? (T)1 : v < 0 ? (T)-1 : (T)0; }               \
    /* log(1 + e^-x) for any x */                                                               \
    NB_LOSS_HD T name##_softplus_neg(T x) { return log1p(exp(-fabs(x))) + (x < 0 ? -x : (T)0); } \
    NB_LOSS_HD T name##_clamped_log(T v) { T l = log(v); return l > -100 ? l : (T)-100; }       \
    /* d focal / d x (wrt 0) or d y: with m = 1 - p_t, the product rule on                      \
       a_t m^q ce; a zero dm / d. leaves out m^(q - 1), which is infinite at m = 0 */           \
    NB_LOSS_HD T name##_focal_grad(int wrt, T x, T y, T p, T q) {                               \
        T s = 1 / (1 + exp(-x)), m = 1 - (s * y + (1 - s) * (1 - y));                           \
        T ce = (1 - y) * x + name##_softplus_neg(x), mq = pow(m, q);                            \
        T dm = wrt == 0 ? -s * (1 - s) * (2 * y - 1) : 1 - 2 * s;                               \
        T dce = wrt == 0 ? s - y : -x;                                                          \
        T d = dce * mq + (dm == 0 || q == 0 ? (T)0 : ce * q * pow(m, q - 1) * dm);              \
        if (p < 0) return d;                                                                    \
        T alpha = p * y + (1 - p) * (1 - y);                                                    \
        return alpha * d + (wrt == 0 ? (T)0 : (2 * p - 1) * mq * ce);                           \
    }                                                                                           \
    NB_LOSS_HD T name##_loss(nb_op op, T x, T y, T c, T p, T q, int flags) {                    \
        T d = x - y;                                                                            \
        switch (op) {                                                                           \
        case NB_OP_BINARY_CROSS_ENTROPY:                                                        \
            return -(y * name##_clamped_log(x) + (1 - y) * name##_clamped_log(1 - x));          \
        case NB_OP_BINARY_CROSS_ENTROPY_WITH_LOGITS:                                            \
            return (1 - y) * x + (1 + (c - 1) * y) * name##_softplus_neg(x);                    \
        case NB_OP_MSE_LOSS: return d * d;                                                      \
        case NB_OP_L1_LOSS: return fabs(d);                                                     \
        case NB_OP_HUBER_LOSS: return fabs(d) < p ? d * d / 2 : p * (fabs(d) - p / 2);          \
        case NB_OP_SMOOTH_L1_LOSS: return fabs(d) < p ? d * d / (2 * p) : fabs(d) - p / 2;      \
        case NB_OP_LOG_COSH_LOSS:                                                               \
            return fabs(d) + log1p(exp(-2 * fabs(d))) - (T)0.69314718055994530942;              \
        case NB_OP_MAPE_LOSS: {                                                                 \
            T scale = fabs(y) > (T)NB_LOSS_EPSILON ? fabs(y) : (T)NB_LOSS_EPSILON;              \
            return 100 * fabs(d) / scale;                                                       \
        }                                                                                       \
        case NB_OP_MSLE_LOSS: {                                                                 \
            T e = (T)NB_LOSS_EPSILON, a = log1p(x > e ? x : e) - log1p(y > e ? y : e);          \
            return a * a;                                                                       \
        }                                                                                       \
        case NB_OP_POISSON_NLL_LOSS: {                                                          \
            T l = flags & NB_LOSS_LOG_INPUT ? exp(x) - y * x : x - y * log(x + p);              \
            if (flags & NB_LOSS_FULL && y > 1) l += y * log(y) - y + (T)0.5 * log(2 * (T)3.14159265358979323846 * y); \
            return l;                                                                           \
        }                                                                                       \
        case NB_OP_GAUSSIAN_NLL_LOSS: {                                                         \
            T v = c > p ? c : p;                                                                \
            return (log(v) + d * d / v) / 2 + (flags & NB_LOSS_FULL ? (T)(NB_LOG_2PI / 2) : (T)0); \
        }                                                                                       \
        case NB_OP_KL_DIV:                                                                      \
            if (flags & NB_LOSS_LOG_TARGET) return exp(y) * (y - x);                            \
            return y > 0 ? y * (log(y) - x) : y == 0 ? (T)0 : (T)NAN;                           \
        case NB_OP_MARGIN_RANKING_LOSS: return p - c * d > 0 ? p - c * d : (T)0;                \
        case NB_OP_FOCAL_LOSS: {                                                                \
            T s = 1 / (1 + exp(-x)), m = 1 - (s * y + (1 - s) * (1 - y)); /* 1 - p_t */         \
            T alpha = p < 0 ? (T)1 : p * y + (1 - p) * (1 - y);                                 \
            return alpha * pow(m, q) * ((1 - y) * x + name##_softplus_neg(x));                  \
        }                                                                                       \
        case NB_OP_HINGE_LOSS: return 1 - y * x > 0 ? 1 - y * x : (T)0;                         \
        default: { /* squared hinge */                                                          \
            T h = 1 - y * x > 0 ? 1 - y * x : (T)0;                                             \
            return h * h;                                                                       \
        }                                                                                       \
        }                                                                                       \
    }                                                                                           \
    /* g * d loss / d (x, y or c for wrt 0, 1, 2) */                                            \
    NB_LOSS_HD T name##_loss_grad(nb_op op, int wrt, T g, T x, T y, T c, T p, T q, int flags) { \
        T d = x - y, s = wrt == 1 ? (T)-1 : (T)1; /* d d / d y = -1 */                          \
        switch (op) {                                                                           \
        case NB_OP_BINARY_CROSS_ENTROPY: {                                                      \
            if (wrt == 1) return g * (name##_clamped_log(1 - x) - name##_clamped_log(x));       \
            T den = (1 - x) * x > (T)1e-12 ? (1 - x) * x : (T)1e-12;                            \
            return g * d / den;                                                                 \
        }                                                                                       \
        case NB_OP_BINARY_CROSS_ENTROPY_WITH_LOGITS: {                                          \
            T sp = name##_softplus_neg(x);                                                      \
            if (wrt == 1) return g * (-x + (c - 1) * sp);                                       \
            if (wrt == 2) return g * y * sp;                                                    \
            T sigmoid_neg = 1 / (1 + exp(x)); /* sigmoid(-x) */                                 \
            return g * ((1 - y) - (1 + (c - 1) * y) * sigmoid_neg);                             \
        }                                                                                       \
        case NB_OP_MSE_LOSS: return g * s * 2 * d;                                              \
        case NB_OP_L1_LOSS: return g * s * name##_sign(d);                                      \
        case NB_OP_HUBER_LOSS: return g * s * (fabs(d) < p ? d : p * name##_sign(d));           \
        case NB_OP_SMOOTH_L1_LOSS: return g * s * (fabs(d) < p ? d / p : name##_sign(d));       \
        case NB_OP_LOG_COSH_LOSS: return g * s * tanh(d);                                       \
        case NB_OP_MAPE_LOSS: {                                                                 \
            bool small = !(fabs(y) > (T)NB_LOSS_EPSILON);                                       \
            T scale = small ? (T)NB_LOSS_EPSILON : fabs(y);                                     \
            T dx = 100 * name##_sign(d) / scale;                                                \
            if (wrt == 0) return g * dx;                                                        \
            return g * (-dx - (small ? (T)0 : 100 * fabs(d) * name##_sign(y) / (scale * scale))); \
        }                                                                                       \
        case NB_OP_MSLE_LOSS: {                                                                 \
            T e = (T)NB_LOSS_EPSILON, xe = x > e ? x : e, ye = y > e ? y : e;                   \
            T a = log1p(xe) - log1p(ye);                                                        \
            if (wrt == 0) return x > e ? g * 2 * a / (1 + xe) : (T)0;                           \
            return y > e ? -g * 2 * a / (1 + ye) : (T)0;                                        \
        }                                                                                       \
        case NB_OP_POISSON_NLL_LOSS: {                                                          \
            bool log_input = flags & NB_LOSS_LOG_INPUT;                                         \
            if (wrt == 0) return g * (log_input ? exp(x) - y : 1 - y / (x + p));                \
            T dy = log_input ? -x : -log(x + p);                                                \
            if (flags & NB_LOSS_FULL && y > 1) dy += log(y) + 1 / (2 * y);                      \
            return g * dy;                                                                      \
        }                                                                                       \
        case NB_OP_GAUSSIAN_NLL_LOSS: {                                                         \
            T v = c > p ? c : p; /* the clamp passes the gradient on, as PyTorch's */           \
            if (wrt == 2) return g * (1 / v - d * d / (v * v)) / 2;                             \
            return g * s * d / v;                                                               \
        }                                                                                       \
        case NB_OP_KL_DIV:                                                                      \
            if (flags & NB_LOSS_LOG_TARGET) return g * (wrt == 0 ? -exp(y) : exp(y) * (y - x + 1)); \
            return g * (wrt == 0 ? -y : log(y) + 1 - x);                                        \
        case NB_OP_MARGIN_RANKING_LOSS:                                                         \
            return p - c * d > 0 ? g * (wrt == 0 ? -c : wrt == 1 ? c : -d) : (T)0;              \
        case NB_OP_FOCAL_LOSS: return g * name##_focal_grad(wrt, x, y, p, q);                   \
        case NB_OP_HINGE_LOSS:                                                                  \
            return 1 - y * x > 0 ? -g * (wrt == 0 ? y : x) : (T)0;                              \
        default: {                                                                              \
            T h = 1 - y * x > 0 ? 1 - y * x : (T)0;                                             \
            return -2 * g * h * (wrt == 0 ? y : x);                                             \
        }                                                                                       \
        }                                                                                       \
    }

NB_DEFINE_LOSSES(float, nb_loss_f32)
NB_DEFINE_LOSSES(double, nb_loss_f64)

#endif
