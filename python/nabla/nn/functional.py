"""nabla.nn.functional: the functional ops and losses, PyTorch's names and arguments."""
import math

from .. import _C
from .._C import (adaptive_avg_pool2d, avg_pool2d, batch_norm, binary_cross_entropy,  # noqa: F401
                  binary_cross_entropy_with_logits, celu, conv2d, conv_transpose2d, cross_entropy, elu,
                  gaussian_nll_loss, hinge_loss, huber_loss, kl_div, l1_loss, log_cosh_loss, mape_loss,
                  margin_ranking_loss, sigmoid_focal_loss, cosine_embedding_loss, triplet_margin_loss,
                  categorical_hinge_loss,
                  mse_loss, msle_loss, poisson_nll_loss, smooth_l1_loss, squared_hinge_loss, embedding, flash_attention, fold, gelu, global_avg_pool2d, glu,
                  group_norm, hardshrink, hardsigmoid, hardswish, hardtanh, layer_norm, leaky_relu, linear,
                  log_softmax, logsigmoid, max_pool2d, maxout, mish, one_hot, prelu, relu, relu6, rms_norm,
                  rrelu, scaled_dot_product_attention, selu, sigmoid, silu, softmax, softplus, softshrink,
                  softsign, swiglu, swish, tanh, tanhshrink, threshold, unfold)


def dropout(input, p=0.5, training=True, generator=None):
    """Zeroes each element with probability p and scales the rest by 1 / (1 - p) in training."""
    if p < 0 or p > 1:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0
    keep = _C.bernoulli(input.detach(), 1 - p, generator)
    return input * (keep * (1.0 / (1 - p)))  # as nabla's C Dropout, so that both round alike


def nll_loss(input, target, ignore_index=-100, reduction="mean"):
    """The negative log-likelihood of log-probabilities input [N, C] at class indices target [N]."""
    picked = input.gather(1, target.long().unsqueeze(1)).squeeze(1)
    keep = target != ignore_index
    losses = _C.where(keep, -picked, 0.0)
    if reduction == "mean":
        return losses.sum() / keep.sum().float()
    return _reduce(losses, reduction, "nll_loss")


def _reduce(losses, reduction, name):
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', not {reduction!r}")


def normalize(input, p=2.0, dim=1, eps=1e-12):
    """input / max(norm_p(input, dim), eps)."""
    return input / input.norm(p, dim, keepdim=True).clamp(min=eps)


def pad(input, pad, value=0.0):
    """Pads the last dims: pad = (left, right[, top, bottom, ...]) from the last dim backwards."""
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: pad must hold pairs for at most {input.ndim} dims, got {pad}")
    out = input
    for i in range(len(pad) // 2):
        dim = input.ndim - 1 - i
        before, after = pad[2 * i], pad[2 * i + 1]
        parts = []
        shape = list(out.shape)
        if before > 0:
            shape[dim] = before
            parts.append(_C.full(tuple(shape), value, dtype=out.dtype, device=out.device))
        parts.append(out)
        if after > 0:
            shape[dim] = after
            parts.append(_C.full(tuple(shape), value, dtype=out.dtype, device=out.device))
        out = _C.cat(parts, dim) if len(parts) > 1 else out
    return out


def rope(input, offset=0, base=10000.0):
    """Rotary position embedding of [..., S, D] (the rotate-half layout)."""
    return _C.rope(input, offset, base)


def kaiming_std(fan_in, gain=math.sqrt(2.0)):
    """The standard deviation of Kaiming-normal initialization."""
    return gain / math.sqrt(fan_in)
