"""nabla.nn.init: PyTorch's initializers (and Keras's variance scaling and LeCun's), in place
and without autograd, each computed by nabla's C initializer (include/nabla/nn.h)."""
from .. import _C


def calculate_gain(nonlinearity, param=None):
    """PyTorch's recommended gain: linear/conv/sigmoid 1, tanh 5/3, relu sqrt 2,
    leaky_relu sqrt(2 / (1 + slope^2)) (slope 0.01 by default), selu 3/4."""
    return _C.calculate_gain(nonlinearity, param)


def constant_(tensor, val):
    """Every element val."""
    return _C.init_("constant", tensor, val)


def zeros_(tensor):
    """Every element 0."""
    return constant_(tensor, 0.0)


def ones_(tensor):
    """Every element 1."""
    return constant_(tensor, 1.0)


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Normal with mean and std."""
    return _C.init_("normal", tensor, mean, std, generator)


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Uniform in [a, b)."""
    return _C.init_("uniform", tensor, a, b, generator)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """N(mean, std^2) conditioned on [a, b]."""
    return _C.init_("trunc_normal", tensor, mean, std, generator, a, b)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Uniform with std gain sqrt(2 / (fan_in + fan_out)) (Glorot and Bengio, 2010)."""
    return _C.init_("xavier", tensor, gain, generator=generator, distribution="uniform")


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Normal with std gain sqrt(2 / (fan_in + fan_out))."""
    return _C.init_("xavier", tensor, gain, generator=generator, distribution="normal")


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """Uniform with std gain / sqrt(fan) (He et al., 2015)."""
    return _C.init_("kaiming", tensor, a if nonlinearity == "leaky_relu" else 0, generator=generator, mode=mode, nonlinearity=nonlinearity,
                    distribution="uniform")


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """Normal with std gain / sqrt(fan) (He et al., 2015); nabla's layers start so."""
    return _C.init_("kaiming", tensor, a if nonlinearity == "leaky_relu" else 0, generator=generator, mode=mode, nonlinearity=nonlinearity,
                    distribution="normal")


def variance_scaling_(tensor, scale=1.0, mode="fan_in", distribution="truncated_normal", generator=None):
    """Keras's VarianceScaling: std sqrt(scale / fan) of mode ('fan_in', 'fan_out', 'fan_avg'),
    distribution 'truncated_normal', 'untruncated_normal' or 'uniform'."""
    return _C.init_("variance_scaling", tensor, scale, generator=generator, mode=mode, distribution=distribution)


def lecun_normal_(tensor, generator=None):
    """Keras's lecun_normal: truncated normal with std 1 / sqrt(fan_in)."""
    return variance_scaling_(tensor, 1.0, "fan_in", "truncated_normal", generator)


def lecun_uniform_(tensor, generator=None):
    """Keras's lecun_uniform: uniform with std 1 / sqrt(fan_in)."""
    return variance_scaling_(tensor, 1.0, "fan_in", "uniform", generator)


def orthogonal_(tensor, gain=1.0, generator=None):
    """A (semi-)orthogonal matrix over [size(0), the rest] times gain (Saxe et al., 2014)."""
    return _C.init_("orthogonal", tensor, gain, generator=generator)


def eye_(tensor):
    """The identity of a 2-dim tensor."""
    return _C.init_("eye", tensor)


def dirac_(tensor, groups=1):
    """The Dirac delta of a 3- to 5-dim convolution weight, per group."""
    return _C.init_("dirac", tensor, groups)
