"""nabla.optim: nabla's fused C optimizers (one kernel per parameter and step) with
PyTorch's param_groups, zero_grad, step and state_dict: SGD, Adam, AdamW, Adagrad,
Adadelta, RMSprop, Adamax, NAdam, RAdam, Lion and FTRL (Keras's)."""
from .. import _C
from . import lr_scheduler  # noqa: F401


class Optimizer:
    """The base: param_groups are dicts of "params" and hyper-parameters, all stepped by
    one C optimizer; a group's changed settings reach it at the next step."""

    kind = None

    def __init__(self, params, defaults):
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups = []
        for g in groups:
            self._add_group(g)
        self._build()

    def _add_group(self, group):
        group = dict(group)
        group["params"] = list(group["params"])
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        for p in group["params"]:
            if not isinstance(p, _C.Tensor):
                raise TypeError(f"{type(self).__name__}: params must be Tensors, not {type(p).__name__}")
        self.param_groups.append(group)

    def _options(self, g):
        """The group's settings by the C option names (betas are beta1 and beta2)."""
        options = {}
        for key in self.defaults:
            if key == "betas":
                options["beta1"], options["beta2"] = (float(b) for b in g["betas"])
            else:
                options[key] = float(g[key])
        return options

    def _build(self, state=()):
        self._synced = [self._options(g) for g in self.param_groups]
        self._engine = _C.Optimizer(self.kind, [{"params": g["params"], **o}
                                                for g, o in zip(self.param_groups, self._synced)])
        for k, s in enumerate(state):
            self._engine.set_state(k, s)

    def _count(self):
        return sum(len(g["params"]) for g in self.param_groups)

    def add_param_group(self, group):
        """Adds a group (its parameters start without state)."""
        state = [self._engine.state(k) for k in range(self._count())]
        self._add_group(group)
        try:
            self._build(state)
        except Exception:
            self.param_groups.pop()
            self._build(state)
            raise

    def zero_grad(self, set_to_none=True):
        """Drops every parameter's gradient."""
        self._engine.zero_grad()

    def step(self, closure=None):
        """One update of every parameter with a gradient (closure: recomputes the loss first)."""
        loss = closure() if closure is not None else None
        for i, g in enumerate(self.param_groups):
            options = self._options(g)
            if options != self._synced[i]:
                self._engine.set_options(i, options)
                self._synced[i] = options
        self._engine.step()
        return loss

    def state_dict(self):
        """{'state': {index: {...}}, 'param_groups': [...]} as PyTorch's (parameters by index)."""
        state, groups, index = {}, [], 0
        for g in self.param_groups:
            ids = []
            for _ in g["params"]:
                s = self._engine.state(index)
                if s["step"] or len(s) > 1:
                    state[index] = s
                ids.append(index)
                index += 1
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restores state_dict()'s state and hyper-parameters (the same parameters, in order)."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)):
            raise ValueError("load_state_dict: the groups or their sizes differ from this optimizer's")
        state = {int(k): v for k, v in state_dict["state"].items()}
        for saved, g in zip(groups, self.param_groups):
            g.update({k: v for k, v in saved.items() if k != "params"})
        ids = [index for saved in groups for index in saved["params"]]
        self._build([state.get(index, {}) for index in ids])

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in g.items() if k != "params"]
        return "\n".join(lines) + "\n)"


class SGD(Optimizer):
    """SGD with optional momentum, dampening, Nesterov momentum and L2 weight decay."""

    kind = "sgd"

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
                 maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015); weight_decay adds wd * p to the gradient (decoupled_weight_decay:
    AdamW's); amsgrad keeps the maximum of the second moment (Reddi et al., 2018)."""

    kind = "adam"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize)
        if self.kind == "adam":
            defaults["decoupled_weight_decay"] = decoupled_weight_decay
        super().__init__(params, defaults)


class AdamW(Adam):
    """AdamW (Loshchilov and Hutter, 2019): weight decay decoupled from the gradient."""

    kind = "adamw"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011): lr / (1 + (t - 1) lr_decay) g / (sqrt(sum g^2) + eps)."""

    kind = "adagrad"

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                 *, maximize=False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps,
                                      maximize=maximize))


class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012)."""

    kind = "adadelta"

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, *, maximize=False):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize))


class RMSprop(Optimizer):
    """RMSprop, optionally centered (Graves, 2013) and with momentum."""

    kind = "rmsprop"

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False, *,
                 maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))


class Adamax(Optimizer):
    """Adamax (Kingma and Ba, 2015, section 7): Adam with the infinity norm."""

    kind = "adamax"

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *, maximize=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))


class NAdam(Optimizer):
    """NAdam (Dozat, 2016) with PyTorch's momentum schedule mu_t = b1 (1 - 0.5 0.96^(t psi))."""

    kind = "nadam"

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize))


class RAdam(Optimizer):
    """RAdam (Liu et al., 2020): Adam with the variance rectified, SGD with momentum before it is tractable."""

    kind = "radam"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled_weight_decay=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize))


class Lion(Optimizer):
    """Lion (Chen et al., 2023): p -= lr sign(b1 m + (1 - b1) g), decoupled weight decay."""

    kind = "lion"

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, *, maximize=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay, maximize=maximize))


class FTRL(Optimizer):
    """FTRL-Proximal (McMahan et al., 2013) as Keras's Ftrl: l1 and l2 are lambda1 and lambda2, beta and
    lr_power (-0.5: Adagrad-like rates; 0: a fixed rate) shape the per-coordinate rate."""

    kind = "ftrl"

    def __init__(self, params, lr=1e-3, lr_power=-0.5, initial_accumulator_value=0.1, l1=0.0, l2=0.0, beta=0.0,
                 *, maximize=False):
        super().__init__(params, dict(lr=lr, lr_power=lr_power, initial_accumulator_value=initial_accumulator_value,
                                      l1=l1, l2=l2, beta=beta, maximize=maximize))


Ftrl = FTRL
