"""nabla.optim: SGD, Adam and AdamW over nabla's fused C optimizers, with PyTorch's
param_groups, zero_grad, step and state_dict."""
from .. import _C
from . import lr_scheduler  # noqa: F401


class Optimizer:
    """The base: param_groups are dicts of "params" and hyper-parameters; each group steps
    through one C optimizer (one fused kernel per parameter)."""

    kind = None
    defaults_keys = ()

    def __init__(self, params, defaults):
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups = []
        self._engines = []
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group):
        group = dict(group)
        group["params"] = list(group["params"])
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        for p in group["params"]:
            if not isinstance(p, _C.Tensor):
                raise TypeError(f"{type(self).__name__}: params must be Tensors, not {type(p).__name__}")
        self.param_groups.append(group)
        self._engines.append(self._engine(group))

    def _engine(self, g):
        raise NotImplementedError

    def _settings(self, g):
        return tuple(g[k] for k in self.defaults_keys)

    def zero_grad(self, set_to_none=True):
        """Drops every parameter's gradient."""
        for engine in self._engines:
            engine.zero_grad()

    def step(self, closure=None):
        """One update of every parameter with a gradient (closure: recomputes the loss first)."""
        loss = closure() if closure is not None else None
        for i, (g, engine) in enumerate(zip(self.param_groups, self._engines)):
            if self._settings(g) != engine.settings:
                state = [engine.state(k) for k in range(len(g["params"]))]
                engine = self._engines[i] = self._engine(g)
                for k, s in enumerate(state):
                    engine.set_state(k, s)
            elif g["lr"] != engine.lr:
                engine.lr = g["lr"]
            engine.step()
        return loss

    def state_dict(self):
        """{'state': {index: {...}}, 'param_groups': [...]} as PyTorch's (parameters by index)."""
        state, groups, index = {}, [], 0
        for g, engine in zip(self.param_groups, self._engines):
            ids = []
            for k in range(len(g["params"])):
                s = engine.state(k)
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
        for i, (saved, g) in enumerate(zip(groups, self.param_groups)):
            g.update({k: v for k, v in saved.items() if k != "params"})
            engine = self._engines[i] = self._engine(g)
            for k, index in enumerate(saved["params"]):
                if index in state:
                    engine.set_state(k, state[index])

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in g.items() if k != "params"]
        return "\n".join(lines) + "\n)"


def _c_engine(kind, g, momentum, beta2, eps, weight_decay, nesterov, settings):
    engine = _C.Optimizer(kind, g["params"], g["lr"], momentum, beta2, eps, weight_decay, nesterov)
    return _Engine(engine, settings)


class _Engine:
    """A C optimizer and the settings it was made with."""

    def __init__(self, engine, settings):
        self.engine, self.settings = engine, settings

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def __setattr__(self, name, value):
        if name in ("engine", "settings"):
            object.__setattr__(self, name, value)
        else:
            setattr(self.engine, name, value)


class SGD(Optimizer):
    """SGD with optional momentum, Nesterov momentum and L2 weight decay (PyTorch's formulas)."""

    defaults_keys = ("momentum", "weight_decay", "nesterov")

    def __init__(self, params, lr=1e-3, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov))

    def _engine(self, g):
        return _c_engine("sgd", g, g["momentum"], 0.999, 1e-8, g["weight_decay"], g["nesterov"],
                         self._settings(g))


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015); weight_decay adds wd * p to the gradient."""

    defaults_keys = ("betas", "eps", "weight_decay")
    kind = "adam"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _engine(self, g):
        b1, b2 = g["betas"]
        return _c_engine(self.kind, g, b1, b2, g["eps"], g["weight_decay"], False, self._settings(g))


class AdamW(Adam):
    """AdamW (Loshchilov and Hutter, 2019): weight decay decoupled from the gradient."""

    kind = "adamw"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)
