"""nabla.nn.Module and the layers, as PyTorch's, over nabla's C ops.

The layers draw their initial weights as nabla's C layers do (Kaiming-normal
weights, zero biases, unit norm weights, from the generator given or the
default one, in the same order), so a model built here from a seed starts
where the same C model starts."""
import math
from collections import OrderedDict

from .. import _C
from . import functional as F
from . import init


class Parameter(_C.Tensor):
    """A tensor a Module registers as a parameter: a leaf that requires a gradient."""

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            data = _C.empty(0)
        return _C.Tensor._make_subclass(cls, data, requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """The base of every layer and model: holds parameters, buffers and submodules by attribute
    name, has a train/eval mode, and calls forward when called."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- registration ----
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("Module.__init__() must be called before assigning attributes")
        if isinstance(value, (Parameter, Module)):
            for table in (self._parameters, self._buffers, self._modules):
                table.pop(name, None)
            self.__dict__.pop(name, None)
            (self._parameters if isinstance(value, Parameter) else self._modules)[name] = value
        elif name in self._parameters and value is None:
            self._parameters[name] = None
        elif name in self._buffers and (value is None or isinstance(value, _C.Tensor)):
            self._buffers[name] = value
        elif name in self._parameters or name in self._modules:
            raise TypeError(f"cannot assign a {type(value).__name__} to '{name}' of {type(self).__name__} "
                            "(a Parameter or Module is expected)")
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        for table in ("_parameters", "_buffers", "_modules"):
            d = self.__dict__.get(table)
            if d is not None and name in d:
                return d[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Adds param (a Parameter or None) under name."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: '{name}' must be a Parameter or None")
        self.__dict__.pop(name, None)
        self._parameters[name] = param

    def register_buffer(self, name, tensor):
        """Adds a tensor that is state but not a parameter (running statistics)."""
        if tensor is not None and not isinstance(tensor, _C.Tensor):
            raise TypeError(f"register_buffer: '{name}' must be a Tensor or None")
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor

    def add_module(self, name, module):
        """Adds a submodule under name."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: '{name}' must be a Module")
        self._modules[name] = module

    # ---- walking ----
    def named_modules(self, prefix=""):
        """(path, module) for this module and every submodule, depth first."""
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def children(self):
        """The direct submodules."""
        return (m for m in self._modules.values() if m is not None)

    def named_children(self):
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def named_parameters(self, prefix="", recurse=True):
        """(dotted path, parameter), each parameter once."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for path, m in modules:
            for name, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{path}.{name}" if path else name), p

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True):
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for path, m in modules:
            for name, b in m._buffers.items():
                if b is not None:
                    yield (f"{path}.{name}" if path else name), b

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # ---- modes and moves ----
    def train(self, mode=True):
        """Training mode (dropout on, batch statistics) for this module and its children."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        """Evaluation mode: train(False)."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Drops every parameter's gradient."""
        for p in self.parameters():
            p.grad = None

    def _apply(self, fn):
        for m in self.modules():
            for name, p in m._parameters.items():
                if p is not None:
                    with _NoGrad():
                        moved = fn(p)
                    if moved is not p:
                        m._parameters[name] = Parameter(moved, p.requires_grad)
            for name, b in m._buffers.items():
                if b is not None:
                    m._buffers[name] = fn(b)
        return self

    def to(self, device=None, dtype=None):
        """Moves (and converts floats of) every parameter and buffer; returns self."""
        if isinstance(device, _C.dtype):
            device, dtype = None, device

        def move(t):
            d = dtype if dtype is not None and t.dtype.is_floating_point else None
            return t.to(device, d)
        return self._apply(move)

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to(device if device is not None else "cuda")

    def float(self):
        return self.to(dtype=_C.float32)

    def double(self):
        return self.to(dtype=_C.float64)

    def half(self):
        return self.to(dtype=_C.float16)

    def bfloat16(self):
        return self.to(dtype=_C.bfloat16)

    # ---- state ----
    def state_dict(self, prefix=""):
        """Parameters and buffers by dotted path (PyTorch's names), detached."""
        out = OrderedDict()
        for name, p in self.named_parameters(prefix):
            out[name] = p.detach()
        for name, b in self.named_buffers(prefix):
            out[name] = b.detach()
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copies the tensors of state_dict into this module's (shapes must match; dtypes and
        devices convert). strict: missing and unexpected names are an error, and nothing is
        written. Returns (missing_keys, unexpected_keys)."""
        own = OrderedDict(list(self.named_parameters()) + list(self.named_buffers()))
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise RuntimeError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for name, t in own.items():
            if name in state_dict and tuple(state_dict[name].shape) != tuple(t.shape):
                raise ValueError(f"load_state_dict: '{name}' is {tuple(state_dict[name].shape)} in the "
                                 f"state dict, {tuple(t.shape)} in the module")
        with _NoGrad():
            for name, t in own.items():
                if name in state_dict:
                    t.copy_(state_dict[name])
        return missing, unexpected

    # ---- printing ----
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


class _NoGrad:
    def __enter__(self):
        self.prev = _C.set_grad_enabled(False)

    def __exit__(self, *exc):
        _C.set_grad_enabled(self.prev)


def _kaiming(shape, fan_in, dtype, device, generator):
    w = Parameter(_C.empty(*shape, dtype=dtype, device=device))
    _C.init_("kaiming_normal", w, fan_in, 0, generator)
    return w


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


# ---- layers ----

class Identity(Module):
    """Returns its input."""

    def forward(self, x):
        return x


class Linear(Module):
    """y = x @ weight.T + bias; weight [out_features, in_features] Kaiming-normal, bias zeros."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None, generator=None):
        super().__init__()
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"Linear: needs positive sizes, got {in_features} and {out_features}")
        self.in_features, self.out_features = in_features, out_features
        self.weight = _kaiming((out_features, in_features), in_features, dtype, device, generator)
        self.bias = Parameter(_C.zeros(out_features, dtype=dtype, device=device)) if bias else None
        if not bias:
            self.register_parameter("bias", None)

    def forward(self, x):
        return _C.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    """2-D convolution of [N, C, H, W]; weight [out, in / groups, k, k] Kaiming-normal."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, device=None, dtype=None, generator=None):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: channels {in_channels} -> {out_channels} must divide by groups {groups}")
        kh, kw = _pair(kernel_size)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (kh, kw)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.weight = _kaiming((out_channels, in_channels // groups, kh, kw), in_channels // groups * kh * kw,
                               dtype, device, generator)
        if bias:
            self.bias = Parameter(_C.zeros(out_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return _C.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, groups={self.groups}")


class ConvTranspose2d(Module):
    """The adjoint of Conv2d; weight [in, out / groups, k, k]."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True, dilation=1, device=None, dtype=None, generator=None):
        super().__init__()
        kh, kw = _pair(kernel_size)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (kh, kw)
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        self.groups, self.dilation = groups, dilation
        self.weight = _kaiming((in_channels, out_channels // groups, kh, kw), out_channels // groups * kh * kw,
                               dtype, device, generator)
        if bias:
            self.bias = Parameter(_C.zeros(out_channels, dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return _C.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                   self.output_padding, self.groups, self.dilation)


class _BatchNorm(Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None):
        super().__init__()
        self.num_features, self.eps, self.momentum, self.affine = num_features, eps, momentum, affine
        if affine:
            self.weight = Parameter(_C.ones(num_features, dtype=dtype, device=device))
            self.bias = Parameter(_C.zeros(num_features, dtype=dtype, device=device))
        stats = _C.float32 if dtype in (_C.float16, _C.bfloat16) else dtype
        if track_running_stats:
            self.register_buffer("running_mean", _C.zeros(num_features, dtype=stats, device=device))
            self.register_buffer("running_var", _C.ones(num_features, dtype=stats, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)

    def forward(self, x):
        self._check_input(x)
        use_batch = self.training or self.running_mean is None
        return _C.batch_norm(x, self.running_mean, self.running_var, self.weight if self.affine else None,
                             self.bias if self.affine else None, use_batch, self.momentum, self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"


class BatchNorm1d(_BatchNorm):
    """Batch normalization of [N, C] or [N, C, L] per channel."""

    def _check_input(self, x):
        if x.ndim not in (2, 3):
            raise ValueError(f"BatchNorm1d: expected a 2-D or 3-D input, got {x.ndim}-D")


class BatchNorm2d(_BatchNorm):
    """Batch normalization of [N, C, H, W] per channel."""

    def _check_input(self, x):
        if x.ndim != 4:
            raise ValueError(f"BatchNorm2d: expected a 4-D input, got {x.ndim}-D")


class SyncBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics are those of every rank's batch together (nb_sync_batch_norm):
    the same as BatchNorm of the concatenated batch. process_group None: the default group."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 process_group=None, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.process_group = process_group

    def _check_input(self, x):
        if x.ndim < 2:
            raise ValueError(f"SyncBatchNorm: expected at least a 2-D input, got {x.ndim}-D")

    def forward(self, x):
        from .. import distributed as dist
        self._check_input(x)
        group = self.process_group or dist._default("SyncBatchNorm")
        use_batch = self.training or self.running_mean is None
        return _C.sync_batch_norm(x, self.running_mean, self.running_var, self.weight if self.affine else None,
                                  self.bias if self.affine else None, use_batch, self.momentum, self.eps, group)

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """module with every BatchNorm1d/2d (its own children too) replaced by a SyncBatchNorm holding the
        same parameters and statistics."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            sync = cls.__new__(cls)
            Module.__init__(sync)
            for key in ("num_features", "eps", "momentum", "affine", "training"):
                object.__setattr__(sync, key, getattr(module, key))
            sync.process_group = process_group
            for name, p in module._parameters.items():
                sync._parameters[name] = p
            for name, b in module._buffers.items():
                sync._buffers[name] = b
            return sync
        for name, child in list(module._modules.items()):
            module._modules[name] = cls.convert_sync_batchnorm(child, process_group)
        return module


class GroupNorm(Module):
    """Group normalization: each sample's channel groups normalized over their channels and positions."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: {num_channels} channels do not divide into {num_groups} groups")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        self.weight = Parameter(_C.ones(num_channels, dtype=dtype, device=device)) if affine else None
        self.bias = Parameter(_C.zeros(num_channels, dtype=dtype, device=device)) if affine else None

    def forward(self, x):
        return _C.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


class LayerNorm(Module):
    """Layer normalization over the last dims (normalized_shape), with weight and bias."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = Parameter(_C.ones(*shape, dtype=dtype, device=device)) if elementwise_affine else None
        self.bias = Parameter(_C.zeros(*shape, dtype=dtype, device=device)) if elementwise_affine and bias else None

    def forward(self, x):
        return _C.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


class RMSNorm(Module):
    """RMS normalization over the last dims: x / sqrt(mean(x^2) + eps) * weight."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, device=None, dtype=None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = Parameter(_C.ones(*shape, dtype=dtype, device=device)) if elementwise_affine else None

    def forward(self, x):
        return _C.rms_norm(x, self.normalized_shape, self.weight, self.eps)


class Embedding(Module):
    """A table of num_embeddings rows of embedding_dim, drawn N(0, 1)."""

    def __init__(self, num_embeddings, embedding_dim, device=None, dtype=None, generator=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(_C.empty(num_embeddings, embedding_dim, dtype=dtype, device=device))
        _C.init_("normal", self.weight, 0.0, 1.0, generator)

    def forward(self, indices):
        return _C.embedding(indices, self.weight)


class Dropout(Module):
    """Inverted dropout: zeroes with probability p and scales by 1 / (1 - p) in training."""

    def __init__(self, p=0.5, generator=None):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p, self.generator = p, generator

    def forward(self, x):
        return F.dropout(x, self.p, self.training, self.generator)

    def extra_repr(self):
        return f"p={self.p}"


class _Pool2d(Module):
    """A 2-D pool of [N, C, H, W] over kernel_size windows (stride defaults to the kernel)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return type(self)._pool(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max pooling of [N, C, H, W] (stride defaults to the kernel)."""
    _pool = _C.max_pool2d


class AvgPool2d(_Pool2d):
    """Average pooling of [N, C, H, W] (the divisor counts padding)."""
    _pool = _C.avg_pool2d


class AdaptiveAvgPool2d(Module):
    """Averages [N, C, H, W] over output_size bins."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return _C.adaptive_avg_pool2d(x, self.output_size)


class Flatten(Module):
    """Merges dims start_dim..end_dim ([N, ...] -> [N, prod(...)] by default)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)


def _activation(name, fn, doc):
    def forward(self, x):
        return fn(x)
    return type(name, (Module,), {"forward": forward, "__doc__": doc})


ReLU = _activation("ReLU", _C.relu, "max(x, 0).")
ReLU6 = _activation("ReLU6", _C.relu6, "min(max(x, 0), 6).")
SiLU = _activation("SiLU", _C.silu, "x sigmoid(x).")
Sigmoid = _activation("Sigmoid", _C.sigmoid, "1 / (1 + exp(-x)).")
Tanh = _activation("Tanh", _C.tanh, "tanh(x).")
Hardsigmoid = _activation("Hardsigmoid", _C.hardsigmoid, "relu6(x + 3) / 6.")
Hardswish = _activation("Hardswish", _C.hardswish, "x relu6(x + 3) / 6.")
SwiGLU = _activation("SwiGLU", _C.swiglu, "silu(a) * b of the halves a, b of the last dim (Shazeer, 2020).")
SELU = _activation("SELU", _C.selu, "scale * elu(x, alpha) with Klambauer et al.'s constants.")
Mish = _activation("Mish", _C.mish, "x tanh(softplus(x)).")
Softsign = _activation("Softsign", _C.softsign, "x / (1 + |x|).")
LogSigmoid = _activation("LogSigmoid", _C.logsigmoid, "log(sigmoid(x)), stable.")
Tanhshrink = _activation("Tanhshrink", _C.tanhshrink, "x - tanh(x).")


def _activation_with(name, fn, params, doc):
    """A module whose forward is fn(x, *its settings), the settings given as PyTorch names them."""
    def __init__(self, *args, **kwargs):
        Module.__init__(self)
        values = dict(params)
        names = list(params)
        if len(args) > len(names):
            raise TypeError(f"{name}() takes at most {len(names)} arguments")
        values.update(zip(names, args))
        for key, value in kwargs.items():
            if key not in values:
                raise TypeError(f"{name}() got an unexpected keyword argument '{key}'")
            values[key] = value
        if any(v is None for v in values.values()):
            raise TypeError(f"{name}() needs {', '.join(k for k, v in values.items() if v is None)}")
        self.__dict__.update(values)
        self._settings = names

    def forward(self, x):
        return fn(x, *(getattr(self, k) for k in self._settings))

    return type(name, (Module,), {"__init__": __init__, "forward": forward, "__doc__": doc})


ELU = _activation_with("ELU", _C.elu, {"alpha": 1.0}, "x where x > 0, else alpha (exp(x) - 1).")
CELU = _activation_with("CELU", _C.celu, {"alpha": 1.0}, "max(0, x) + min(0, alpha (exp(x / alpha) - 1)).")
Swish = _activation_with("Swish", _C.swish, {"beta": 1.0}, "x sigmoid(beta x) (Ramachandran et al., 2017).")
Softplus = _activation_with("Softplus", _C.softplus, {"beta": 1.0, "threshold": 20.0},
                            "log(1 + exp(beta x)) / beta; x where beta x > threshold.")
Hardtanh = _activation_with("Hardtanh", _C.hardtanh, {"min_val": -1.0, "max_val": 1.0},
                            "x clamped to [min_val, max_val].")
Threshold = _activation_with("Threshold", _C.threshold, {"threshold": None, "value": None},
                             "value where x <= threshold, else x.")
Hardshrink = _activation_with("Hardshrink", _C.hardshrink, {"lambd": 0.5}, "0 where |x| <= lambd, else x.")
Softshrink = _activation_with("Softshrink", _C.softshrink, {"lambd": 0.5}, "x shrunk toward 0 by lambd.")
GLU = _activation_with("GLU", _C.glu, {"dim": -1}, "a sigmoid(b) of the halves a, b of dim.")
Maxout = _activation_with("Maxout", _C.maxout, {"pieces": 2, "dim": -1},
                          "the maximum of each group of pieces entries of dim (Goodfellow et al., 2013).")


class PReLU(Module):
    """x where x >= 0, else weight x, with a learned weight [num_parameters] (1 or the channels)."""

    def __init__(self, num_parameters=1, init=0.25, dtype=None, device=None):
        super().__init__()
        self.num_parameters = num_parameters
        self.weight = Parameter(_C.full((num_parameters,), init, dtype=dtype, device=device))

    def forward(self, x):
        return _C.prelu(x, self.weight)


class RReLU(Module):
    """Leaky ReLU with slopes uniform in [lower, upper) in training, their mean in evaluation."""

    def __init__(self, lower=1.0 / 8, upper=1.0 / 3, generator=None):
        super().__init__()
        self.lower, self.upper, self.generator = lower, upper, generator

    def forward(self, x):
        return _C.rrelu(x, self.lower, self.upper, self.training, self.generator)


class LeakyReLU(Module):
    """x where x >= 0, else negative_slope * x."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return _C.leaky_relu(x, self.negative_slope)


class GELU(Module):
    """x Phi(x); approximate='tanh' is GPT-2's form."""

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return _C.gelu(x, self.approximate)


class Softmax(Module):
    """exp(x) / sum(exp(x)) along dim."""

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return _C.softmax(x, self.dim)


class CrossEntropyLoss(Module):
    """The fused cross-entropy of logits [N, C] against class indices [N]."""

    def __init__(self, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing

    def forward(self, input, target):
        return _C.cross_entropy(input, target, self.ignore_index, self.reduction, self.label_smoothing)


def _loss(name, fn, settings, doc, tensors=()):
    """A loss module: forward(input, target[, extra]) is fn with its settings by keyword;
    tensors names the settings that are tensors (weights), kept as buffers."""
    def __init__(self, *args, **kwargs):
        Module.__init__(self)
        values = dict(settings)
        values.update(zip(settings, args))
        for key, value in kwargs.items():
            if key not in values:
                raise TypeError(f"{name}() got an unexpected keyword argument '{key}'")
            values[key] = value
        for key, value in values.items():
            if key in tensors and value is not None:
                self.register_buffer(key, value)
            else:
                setattr(self, key, value)
        self._settings = list(settings)

    def forward(self, input, target, *extra):
        return fn(input, target, *extra, **{k: getattr(self, k) for k in self._settings})

    return type(name, (Module,), {"__init__": __init__, "forward": forward, "__doc__": doc})


MSELoss = _loss("MSELoss", F.mse_loss, {"reduction": "mean"}, "(input - target)^2, reduced.")
L1Loss = _loss("L1Loss", F.l1_loss, {"reduction": "mean"}, "|input - target|, reduced.")
HuberLoss = _loss("HuberLoss", F.huber_loss, {"reduction": "mean", "delta": 1.0},
                  "quadratic inside delta, linear outside.")
SmoothL1Loss = _loss("SmoothL1Loss", F.smooth_l1_loss, {"reduction": "mean", "beta": 1.0},
                     "d^2 / (2 beta) inside beta, |d| - beta / 2 outside.")
BCELoss = _loss("BCELoss", F.binary_cross_entropy, {"weight": None, "reduction": "mean"},
                "binary cross-entropy of probabilities.", tensors=("weight",))
BCEWithLogitsLoss = _loss("BCEWithLogitsLoss", F.binary_cross_entropy_with_logits,
                          {"weight": None, "reduction": "mean", "pos_weight": None},
                          "binary cross-entropy of sigmoid(input), fused and stable.",
                          tensors=("weight", "pos_weight"))
KLDivLoss = _loss("KLDivLoss", F.kl_div, {"reduction": "mean", "log_target": False},
                  "KL(target || input) for log-probabilities input.")
PoissonNLLLoss = _loss("PoissonNLLLoss", F.poisson_nll_loss,
                       {"log_input": True, "full": False, "eps": 1e-8, "reduction": "mean"},
                       "the Poisson negative log-likelihood.")
GaussianNLLLoss = _loss("GaussianNLLLoss", F.gaussian_nll_loss, {"full": False, "eps": 1e-6, "reduction": "mean"},
                        "the Gaussian negative log-likelihood; forward(input, target, var).")
LogCoshLoss = _loss("LogCoshLoss", F.log_cosh_loss, {"reduction": "mean"}, "log(cosh(input - target)) (Keras).")
MAPELoss = _loss("MAPELoss", F.mape_loss, {"reduction": "mean"}, "mean absolute percentage error (Keras).")
MSLELoss = _loss("MSLELoss", F.msle_loss, {"reduction": "mean"}, "mean squared logarithmic error (Keras).")
HingeLoss = _loss("HingeLoss", F.hinge_loss, {"reduction": "mean"}, "max(0, 1 - target input) (Keras).")
SquaredHingeLoss = _loss("SquaredHingeLoss", F.squared_hinge_loss, {"reduction": "mean"},
                         "max(0, 1 - target input)^2 (Keras).")


class MarginRankingLoss(Module):
    """max(0, margin - target (input1 - input2)), PyTorch's."""

    def __init__(self, margin=0.0, reduction="mean"):
        super().__init__()
        self.margin, self.reduction = margin, reduction

    def forward(self, input1, input2, target):
        return F.margin_ranking_loss(input1, input2, target, self.margin, self.reduction)


# ---- containers ----

class ModuleList(Module):
    """A list of submodules, registered as "0", "1", ..."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Sequential(ModuleList):
    """Runs its modules in order; they are named "0", "1", ... (or by an OrderedDict's keys)."""

    def __init__(self, *modules):
        Module.__init__(self)
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleDict(Module):
    """A dict of submodules, registered by key."""

    def __init__(self, modules=None):
        super().__init__()
        for name, m in (modules or {}).items():
            self.add_module(name, m)

    def __getitem__(self, name):
        return self._modules[name]

    def __setitem__(self, name, module):
        self.add_module(name, module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()


class DepthwiseSeparableConv2d(Sequential):
    """MobileNet's block, as nabla's C one: depthwise k x k conv (stride, padding k // 2) ->
    BatchNorm -> activation -> pointwise 1x1 conv -> BatchNorm -> activation."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, activation=None, device=None,
                 dtype=None, generator=None):
        act = activation if activation is not None else ReLU
        super().__init__(OrderedDict([
            ("depthwise", Conv2d(in_channels, in_channels, kernel_size, stride, kernel_size // 2, 1, in_channels,
                                 False, device, dtype, generator)),
            ("bn1", BatchNorm2d(in_channels, device=device, dtype=dtype)),
            ("act1", act()),
            ("pointwise", Conv2d(in_channels, out_channels, 1, 1, 0, 1, 1, False, device, dtype, generator)),
            ("bn2", BatchNorm2d(out_channels, device=device, dtype=dtype)),
            ("act2", act()),
        ]))


class MultiheadAttention(Module):
    """Self-attention over x [B, S, dim], as nabla's C layer: one projection "qkv" to heads + 2
    kv_heads head-dim slices, scaled_dot_product_attention (optionally causal, rotary, grouped-query),
    and the projection "out". set_kv_cache(batch, capacity) turns on a key/value cache for decoding."""

    def __init__(self, embed_dim, num_heads, kv_heads=None, causal=False, bias=True, rope=False,
                 rope_base=10000.0, dropout=0.0, device=None, dtype=None, generator=None):
        super().__init__()
        kv_heads = kv_heads or num_heads
        if num_heads <= 0 or embed_dim % num_heads or num_heads % kv_heads or (rope and embed_dim // num_heads % 2):
            raise ValueError(f"MultiheadAttention: needs heads dividing embed_dim, kv_heads dividing heads "
                             f"and an even head dim with rope, got embed_dim {embed_dim}, num_heads "
                             f"{num_heads}, kv_heads {kv_heads}, rope {rope}")
        if not 0 <= dropout < 1:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1), got {dropout}")
        self.embed_dim, self.num_heads, self.kv_heads = embed_dim, num_heads, kv_heads
        self.head_dim = embed_dim // num_heads
        self.causal, self.rope, self.rope_base, self.dropout = causal, rope, rope_base, dropout
        self.generator, self._cache = generator, None
        self.qkv = Linear(embed_dim, (num_heads + 2 * self.kv_heads) * self.head_dim, bias, device, dtype,
                          generator)
        self.out = Linear(embed_dim, embed_dim, bias, device, dtype, generator)

    def set_kv_cache(self, batch, capacity):
        """A cache of capacity positions for batch sequences (0 frees it). While it is on, each
        forward appends its keys and values and attends to every cached one, its queries (and
        rotary angles) placed after them: feed a prompt, then a token at a time, in evaluation
        without gradients. Setting it again empties it."""
        if batch <= 0 or capacity < 0:
            raise ValueError(f"set_kv_cache: needs batch > 0 and capacity >= 0, got {batch} and {capacity}")
        w = self.qkv.weight
        shape = (batch, self.kv_heads, capacity, self.head_dim)
        self._cache = [_C.zeros(*shape, dtype=w.dtype, device=w.device),
                       _C.zeros(*shape, dtype=w.dtype, device=w.device), 0] if capacity else None

    @property
    def cached_positions(self):
        """How many positions the KV cache holds (0 without one)."""
        return self._cache[2] if self._cache else 0

    def _append(self, k, v):
        keys, values, used = self._cache
        B, S = k.shape[0], k.shape[2]
        if B != keys.shape[0] or used + S > keys.shape[2]:
            raise ValueError(f"MultiheadAttention: the KV cache holds {keys.shape[0]} sequences of "
                             f"{keys.shape[2]} positions, {used} used; the input adds {B} x {S}")
        with _NoGrad():
            keys[:, :, used:used + S] = k
            values[:, :, used:used + S] = v
        self._cache[2] = used + S
        return keys[:, :, :used + S], values[:, :, :used + S]

    def forward(self, x, attn_mask=None):
        if x.ndim != 3 or x.shape[2] != self.embed_dim:
            raise ValueError(f"MultiheadAttention: needs x [B, S, {self.embed_dim}], got {list(x.shape)}")
        B, S, _ = x.shape
        h, kv, d = self.num_heads, self.kv_heads, self.head_dim
        offset = self.cached_positions
        qkv = self.qkv(x).view(B, S, h + 2 * kv, d).transpose(1, 2)
        q, k, v = qkv.split([h, kv, kv], 1)
        if self.rope:
            q, k = q.rope(offset, self.rope_base), k.rope(offset, self.rope_base)
        if self._cache:
            k, v = self._append(k, v)
        y = _C.scaled_dot_product_attention(q, k, v, attn_mask, self.dropout if self.training else 0.0,
                                            self.causal, None, self.generator)
        return self.out(y.transpose(1, 2).reshape(B, S, self.embed_dim))

    def extra_repr(self):
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, kv_heads={self.kv_heads}, "
                f"causal={self.causal}, rope={self.rope}")


class TransformerBlock(Module):
    """nabla's pre-norm decoder block: h = x + drop(attn(norm1(x))), then h + drop(mlp(norm2(h))),
    "mlp" a Sequential of fc1, act and fc2. The MLP is hidden wide (default 4 embed_dim, or with
    SwiGLU 8 embed_dim / 3 rounded up to 64, as Llama); norms are LayerNorm or RMSNorm. dropout is on
    each residual branch, attn_dropout on the attention probabilities (both in training only)."""

    def __init__(self, embed_dim, num_heads, kv_heads=None, hidden=None, causal=True, bias=True,
                 rope=False, rope_base=10000.0, rms_norm=False, swiglu=False, dropout=0.0, attn_dropout=0.0,
                 eps=1e-5, device=None, dtype=None, generator=None):
        super().__init__()
        if not 0 <= dropout < 1:
            raise ValueError(f"TransformerBlock: dropout must be in [0, 1), got {dropout}")
        if hidden is None:
            hidden = (8 * embed_dim // 3 + 63) // 64 * 64 if swiglu else 4 * embed_dim
        norm = _row_norm(embed_dim, rms_norm, eps, device, dtype)
        # assigned in this order: the weights draw from the generator as the C block's do
        self.norm1 = norm()
        self.attn = MultiheadAttention(embed_dim, num_heads, kv_heads, causal, bias, rope, rope_base,
                                       attn_dropout, device, dtype, generator)
        self.norm2 = norm()
        self.mlp = Sequential(OrderedDict([
            ("fc1", Linear(embed_dim, 2 * hidden if swiglu else hidden, bias, device, dtype, generator)),
            ("act", SwiGLU() if swiglu else GELU("tanh")),
            ("fc2", Linear(hidden, embed_dim, bias, device, dtype, generator)),
        ]))
        self.drop = Dropout(dropout, generator)

    def forward(self, x):
        h = x + self.drop(self.attn(self.norm1(x)))
        return h + self.drop(self.mlp(self.norm2(h)))


def _row_norm(dim, rms_norm, eps, device, dtype):
    if rms_norm:
        return lambda: RMSNorm(dim, eps, device=device, dtype=dtype)
    return lambda: LayerNorm(dim, eps, device=device, dtype=dtype)


class GPT(Module):
    """nabla's GPT (the C nb_nn_gpt, with its parameter names): token embedding "wte" (and learned
    positions "wpe" without rope), TransformerBlocks "blocks.0"..., a final "norm" and the projection
    to the vocabulary ("head", or wte's weight when tied). Maps i64 tokens [B, S] to logits
    [B, S, vocab_size]. The weights start as GPT-2's: N(0, 0.02), the residual projections (attn.out,
    mlp.fc2) N(0, 0.02 / sqrt(2 num_layers)); from the same generator, the C GPT's weights.

    arch="gpt2" (LayerNorm, tanh GELU, learned positions, tied embeddings, biases) and
    arch="llama" (RMSNorm, SwiGLU, RoPE, no biases, a separate head) set the defaults of the
    flags after it, as examples/train_gpt's --arch does."""

    def __init__(self, vocab_size, context_length, num_layers, embed_dim, num_heads, kv_heads=None,
                 arch="gpt2", hidden=None, bias=None, rope=None, rms_norm=None, swiglu=None, tied=None,
                 dropout=0.0, eps=1e-5, device=None, dtype=None, generator=None):
        super().__init__()
        if arch not in ("gpt2", "llama"):
            raise ValueError(f"GPT: arch must be 'gpt2' or 'llama', got {arch!r}")
        if vocab_size <= 0 or context_length <= 0 or not 1 <= num_layers <= 128:
            raise ValueError(f"GPT: needs vocab_size, context_length and 1 to 128 layers, got {vocab_size}, "
                             f"{context_length} and {num_layers}")
        llama = arch == "llama"
        pick = lambda given, default: default if given is None else given  # noqa: E731
        rope, tied = pick(rope, llama), pick(tied, not llama)
        self.vocab_size, self.context_length, self.num_layers = vocab_size, context_length, num_layers
        self.wte = Embedding(vocab_size, embed_dim, device, dtype, generator)
        if not rope:
            self.wpe = Embedding(context_length, embed_dim, device, dtype, generator)
        self.blocks = ModuleList(
            TransformerBlock(embed_dim, num_heads, kv_heads, hidden, True, pick(bias, not llama), rope, 10000.0,
                             pick(rms_norm, llama), pick(swiglu, llama), dropout, 0.0, eps, device, dtype,
                             generator)
            for _ in range(num_layers))
        self.norm = _row_norm(embed_dim, pick(rms_norm, llama), eps, device, dtype)()
        if not tied:
            self.head = Linear(embed_dim, vocab_size, False, device, dtype, generator)
        for name, p in self.named_parameters():
            if p.ndim == 2:
                residual = name.endswith(("attn.out.weight", "mlp.fc2.weight"))
                init.normal_(p, 0.0, 0.02 / math.sqrt(2 * num_layers) if residual else 0.02, generator)

    def set_kv_cache(self, batch, capacity):
        """A KV cache of capacity positions for batch sequences in every attention (0 frees them);
        see MultiheadAttention.set_kv_cache. Positions continue from what the cache holds."""
        for m in self.modules():
            if isinstance(m, MultiheadAttention):
                m.set_kv_cache(batch, capacity)

    def forward(self, tokens):
        offset = self.blocks[0].attn.cached_positions
        if tokens.ndim != 2 or offset + tokens.shape[1] > self.context_length:
            raise ValueError(f"GPT: needs tokens [B, S] with S at most the context {self.context_length} "
                             f"({offset} cached), got {list(tokens.shape)}")
        h = self.wte(tokens)
        if "wpe" in self._modules:
            h = h + self.wpe(_C.arange(offset, offset + tokens.shape[1], dtype=_C.int64, device=tokens.device))
        for block in self.blocks:
            h = block(h)
        h = self.norm(h)
        return self.head(h) if "head" in self._modules else _C.linear(h, self.wte.weight)

    def loss(self, tokens, targets):
        """The mean cross-entropy of the next-token logits for tokens [B, S] against targets [B, S]."""
        return _C.cross_entropy(self(tokens).view(-1, self.vocab_size), targets.reshape(-1))

    def extra_repr(self):
        return f"vocab_size={self.vocab_size}, context_length={self.context_length}, num_layers={self.num_layers}"
