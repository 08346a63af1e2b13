/* One optimizer update of one element, written once for the CPU (C, double)
 * and CUDA (C++, float or double): p is the parameter, g its gradient and
 * s[0..2] the state (zero where the slot is absent), a the step's settings
 * (nb_optim_attrs: the coefficients worked out on the host for the step t
 * of the parameter). PyTorch's formulas; bc1, bc2 are 1 - beta^t:
 *
 *   every rule  g = -g if maximize;  p *= decay;  g += l2 p  (decoupled weight
 *               decay: decay = 1 - lr wd and l2 = 0; else decay = 1 and l2 = wd)
 *   sgd       s0 = first ? g : momentum s0 + (1 - dampening) g
 *             g = nesterov ? g + momentum s0 : s0 (with momentum);  p -= lr g
 *   adam      s0 = b1 s0 + (1 - b1) g;  s1 = b2 s1 + (1 - b2) g^2
 *             amsgrad: s2 = max(s2, s1), v = s2, else v = s1
 *             p -= lr / bc1 s0 / (sqrt(v / bc2) + eps)
 *   adagrad   s0 += g^2;  p -= coef1 g / (sqrt(s0) + eps)
 *   adadelta  s0 = rho s0 + (1 - rho) g^2 (rho is beta2)
 *             d = sqrt(s1 + eps) / sqrt(s0 + eps) g;  s1 = rho s1 + (1 - rho) d^2
 *             p -= lr d
 *   rmsprop   s0 = alpha s0 + (1 - alpha) g^2 (alpha is beta2)
 *             centered: s2 = alpha s2 + (1 - alpha) g, r = sqrt(s0 - s2^2) + eps
 *             else r = sqrt(s0) + eps
 *             momentum: s1 = momentum s1 + g / r, p -= lr s1, else p -= lr g / r
 *   adamax    s0 = b1 s0 + (1 - b1) g;  s1 = max(b2 s1, |g| + eps)
 *             p -= lr / bc1 s0 / s1
 *   nadam     s0, s1 as adam;  r = sqrt(s1 / bc2) + eps
 *             p -= coef1 g / r + coef2 s0 / r
 *   radam     s0, s1 as adam;  m = s0 / bc1
 *             p -= lr m coef2 / (sqrt(s1) + eps) if coef1 > 0 (coef2 = coef1 sqrt(bc2)), else lr m
 *   lion      p -= lr sign(b1 s0 + (1 - b1) g);  s0 = b2 s0 + (1 - b2) g
 *   ftrl      (Keras's form; s0 the accumulator n, s1 the linear term z)
 *             n' = s0 + g^2;  s1 += g - (n'^-lr_power - s0^-lr_power) / lr p;  s0 = n'
 *             p = |s1| <= l1 ? 0 : (sign(s1) l1 - s1) / ((n'^-lr_power + beta) / lr + 2 l2)
 * The settings' branches are selects, so that a loop over one rule
 * vectorizes; a slot the settings leave unused is scratch (the CPU) or not
 * stored (CUDA), so computing it anyway is harmless. */
#ifndef NABLA_OPTIM_UPDATE_H
#define NABLA_OPTIM_UPDATE_H

#include "internal.h"

#if defined(__CUDACC__)
#include <cmath>
#define NB_OPTIM_HD __host__ __device__ __forceinline__
#else
#include <tgmath.h>
#define NB_OPTIM_HD static inline __attribute__((always_inline))
#endif

#define NB_DEFINE_OPTIM_UPDATE(T, name)                                                          \
    NB_OPTIM_HD T name##_sign(T x) { return (T)((x > 0) - (x < 0)); }                            \
    /* n^-lr_power; the default -0.5 is a square root */                                         \
    NB_OPTIM_HD T name##_ftrl_power(T n, T lr_power) {                                           \
        return lr_power == (T)-0.5 ? sqrt(n) : pow(n, -lr_power);                                \
    }                                                                                            \
    NB_OPTIM_HD T name##_ftrl(const nb_optim_attrs *a, T p, T g, T *s) {                         \
        T lr = (T)a->lr, power = (T)a->lr_power, n = s[0] + g * g;                               \
        T root = name##_ftrl_power(n, power);                                                    \
        s[1] += g - (root - name##_ftrl_power(s[0], power)) / lr * p;                            \
        s[0] = n;                                                                                \
        T l1 = (T)a->l1;                                                                         \
        T w = (name##_sign(s[1]) * l1 - s[1]) / ((root + (T)a->beta) / lr + 2 * (T)a->ftrl_l2);  \
        return fabs(s[1]) <= l1 ? (T)0 : w;                                                      \
    }                                                                                            \
    NB_OPTIM_HD T name##_rmsprop(const nb_optim_attrs *a, T p, T g, T *s) {                      \
        T alpha = (T)a->beta2, lr = (T)a->lr;                                                    \
        s[0] = alpha * s[0] + (1 - alpha) * g * g;                                               \
        s[2] = alpha * s[2] + (1 - alpha) * g;                                                   \
        T r = sqrt(s[0] - (a->centered ? s[2] * s[2] : (T)0)) + (T)a->eps;                       \
        s[1] = (T)a->momentum * s[1] + g / r;                                                    \
        return a->momentum > 0 ? p - lr * s[1] : p - lr * g / r;                                 \
    }                                                                                            \
    /* the first and second moments of the Adam family */                                      \
    NB_OPTIM_HD void name##_moments(const nb_optim_attrs *a, T g, T *s) {                        \
        T b1 = (T)a->beta1, b2 = (T)a->beta2;                                                    \
        s[0] = b1 * s[0] + (1 - b1) * g;                                                         \
        s[1] = b2 * s[1] + (1 - b2) * g * g;                                                     \
    }                                                                                            \
    /* kind is a->kind; a constant there lets a loop over one rule inline it */                 \
    NB_OPTIM_HD T name##_rule(const nb_optim_attrs *a, int kind, T p, T g, T *s) {               \
        T lr = (T)a->lr, eps = (T)a->eps;                                                        \
        switch (kind) {                                                                          \
        case NB_OPTIM_SGD: {                                                                     \
            T momentum = (T)a->momentum;                                                         \
            s[0] = a->first ? g : momentum * s[0] + (T)(1 - a->dampening) * g;                   \
            T step = a->nesterov ? g + momentum * s[0] : s[0];                                   \
            return p - lr * (a->momentum > 0 ? step : g);                                        \
        }                                                                                        \
        case NB_OPTIM_ADAM:                                                                      \
        case NB_OPTIM_ADAMW: {                                                                   \
            name##_moments(a, g, s);                                                             \
            s[2] = s[2] > s[1] ? s[2] : s[1];                                                    \
            T v = a->amsgrad ? s[2] : s[1];                                                      \
            return p - (T)(a->lr / a->bias_correction1) * s[0] /                                 \
                           (sqrt(v / (T)a->bias_correction2) + eps);                             \
        }                                                                                        \
        case NB_OPTIM_ADAGRAD:                                                                   \
            s[0] += g * g;                                                                       \
            return p - (T)a->coef1 * g / (sqrt(s[0]) + eps);                                     \
        case NB_OPTIM_ADADELTA: {                                                                \
            T rho = (T)a->beta2;                                                                 \
            s[0] = rho * s[0] + (1 - rho) * g * g;                                               \
            T d = sqrt(s[1] + eps) / sqrt(s[0] + eps) * g;                                       \
            s[1] = rho * s[1] + (1 - rho) * d * d;                                               \
            return p - lr * d;                                                                   \
        }                                                                                        \
        case NB_OPTIM_RMSPROP: return name##_rmsprop(a, p, g, s);                                \
        case NB_OPTIM_ADAMAX: {                                                                  \
            T b1 = (T)a->beta1, decayed = (T)a->beta2 * s[1], bound = fabs(g) + eps;             \
            s[0] = b1 * s[0] + (1 - b1) * g;                                                     \
            s[1] = decayed > bound ? decayed : bound;                                            \
            return p - (T)(a->lr / a->bias_correction1) * s[0] / s[1];                           \
        }                                                                                        \
        case NB_OPTIM_NADAM: {                                                                   \
            name##_moments(a, g, s);                                                             \
            T r = sqrt(s[1] / (T)a->bias_correction2) + eps;                                     \
            return p - (T)a->coef1 * g / r - (T)a->coef2 * s[0] / r;                             \
        }                                                                                        \
        case NB_OPTIM_RADAM: {                                                                   \
            name##_moments(a, g, s);                                                             \
            T m = s[0] / (T)a->bias_correction1;                                                 \
            T rectified = (T)a->coef2 / (sqrt(s[1]) + eps);                                      \
            return p - lr * m * (a->coef1 > 0 ? rectified : (T)1);                               \
        }                                                                                        \
        case NB_OPTIM_LION: {                                                                    \
            T b1 = (T)a->beta1, b2 = (T)a->beta2, c = b1 * s[0] + (1 - b1) * g;                  \
            s[0] = b2 * s[0] + (1 - b2) * g;                                                     \
            return p - lr * name##_sign(c);                                                      \
        }                                                                                        \
        default: return name##_ftrl(a, p, g, s);                                                 \
        }                                                                                        \
    }                                                                                            \
    NB_OPTIM_HD T name##_update(const nb_optim_attrs *a, int kind, T p, T g, T *s) {             \
        g = a->maximize ? -g : g;                                                                \
        p *= (T)a->decay;                                                                        \
        return name##_rule(a, kind, p, g + (T)a->l2 * p, s);                                     \
    }

#endif
