"""nabla.nn: Module, Parameter, the layers, functional ops and initializers."""
from . import functional, init, parallel, utils  # noqa: F401
from .modules import *  # noqa: F401,F403
from .modules import Module, Parameter  # noqa: F401
