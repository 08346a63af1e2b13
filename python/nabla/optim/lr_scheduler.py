"""nabla.optim.lr_scheduler: PyTorch's learning-rate schedules, the rates computed by nabla's C
schedules (nb_lr_schedule_at, nb_lr_plateau_update); each sets its groups' "lr" per step.

Every closed-form scheduler also takes warmup_steps and warmup_start_factor (nabla's): a linear
warmup from warmup_start_factor times the schedule's first rate before the schedule starts, as
SequentialLR of a LinearLR and the schedule would."""
from .. import _C


def _per_group(value, n, name):
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name}: expected {n} values, one per param group, got {len(value)}")
        return list(value)
    return [value] * n


class LRScheduler:
    """The base: each group's rate at step last_epoch from its initial rate, by the C schedule of
    self._schedules[group] (a dict of nb_lr_schedule's fields)."""

    _schedules = None

    def __init__(self, optimizer, last_epoch=-1, warmup_steps=0, warmup_start_factor=1.0 / 3):
        self.optimizer = optimizer
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        if self._schedules is not None and warmup_steps:
            for s in self._schedules:
                s.update(warmup_steps=warmup_steps, warmup_start_factor=warmup_start_factor)
        self.step()

    def get_lr(self):
        return [_C.lr_schedule_at(s, self.last_epoch, base) for s, base in zip(self._schedules, self.base_lrs)]

    def step(self):
        """Advances one step (or epoch) and sets the rates."""
        self.last_epoch += 1
        for g, lr in zip(self.optimizer.param_groups, self.get_lr()):
            g["lr"] = lr

    def get_last_lr(self):
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self):
        return {k: v for k, v in self.__dict__.items() if k != "optimizer" and not callable(v)}

    def load_state_dict(self, state):
        self.__dict__.update(state)

    def _same(self, optimizer, **fields):
        self._schedules = [dict(fields) for _ in optimizer.param_groups]


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(step); lr_lambda may be a list, one per group."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1, **warmup):
        self.lr_lambdas = _per_group(lr_lambda, len(optimizer.param_groups), "LambdaLR")
        self._schedules = [{"kind": "lambda", "fn": f} for f in self.lr_lambdas]
        super().__init__(optimizer, last_epoch, **warmup)


class ConstantLR(LRScheduler):
    """lr = base_lr * factor for the first total_iters steps, then base_lr."""

    def __init__(self, optimizer, factor=1.0 / 3, total_iters=5, last_epoch=-1, **warmup):
        self._same(optimizer, kind="constant", factor=factor, total_steps=total_iters)
        super().__init__(optimizer, last_epoch, **warmup)


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (step // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1, **warmup):
        self.step_size, self.gamma = step_size, gamma
        self._same(optimizer, kind="step", step_size=step_size, gamma=gamma)
        super().__init__(optimizer, last_epoch, **warmup)


class MultiStepLR(LRScheduler):
    """lr = base_lr * gamma ** (the milestones passed)."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1, **warmup):
        self._same(optimizer, kind="multi_step", milestones=sorted(milestones), gamma=gamma)
        super().__init__(optimizer, last_epoch, **warmup)


class ExponentialLR(LRScheduler):
    """lr = base_lr * gamma ** step."""

    def __init__(self, optimizer, gamma, last_epoch=-1, **warmup):
        self._same(optimizer, kind="exponential", gamma=gamma)
        super().__init__(optimizer, last_epoch, **warmup)


class LinearLR(LRScheduler):
    """The rate scaled from start_factor to end_factor linearly over total_iters steps."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1, **warmup):
        self._same(optimizer, kind="linear", start_factor=start_factor, end_factor=end_factor,
                   total_steps=total_iters)
        super().__init__(optimizer, last_epoch, **warmup)


class PolynomialLR(LRScheduler):
    """lr = base_lr * (1 - min(step, total_iters) / total_iters) ** power."""

    def __init__(self, optimizer, total_iters=5, power=1.0, last_epoch=-1, **warmup):
        self._same(optimizer, kind="polynomial", total_steps=total_iters, power=power)
        super().__init__(optimizer, last_epoch, **warmup)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) (1 + cos(pi step / T_max)) / 2 (past T_max the cosine goes
    on, as PyTorch's)."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1, **warmup):
        self._same(optimizer, kind="cosine", total_steps=T_max, min_lr=eta_min)
        super().__init__(optimizer, last_epoch, **warmup)


class CosineAnnealingWarmRestarts(LRScheduler):
    """The cosine restarted every T_0 steps, each period T_mult times the last (SGDR, Loshchilov and
    Hutter, 2017)."""

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0, last_epoch=-1, **warmup):
        self._same(optimizer, kind="cosine_warm_restarts", t0=T_0, t_mult=T_mult, min_lr=eta_min)
        super().__init__(optimizer, last_epoch, **warmup)


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith and Topin, 2018) with PyTorch's arguments: the rate rises from
    max_lr / div_factor to max_lr and falls to that / final_div_factor; with cycle_momentum the
    momentum (or beta1) cycles inversely between max_momentum and base_momentum. max_lr may be a
    list, one per group."""

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
                 anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
                 div_factor=25.0, final_div_factor=1e4, three_phase=False, last_epoch=-1):
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError("OneCycleLR: needs total_steps, or epochs and steps_per_epoch")
            total_steps = epochs * steps_per_epoch
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.cycle_momentum = cycle_momentum
        self._schedules = [dict(kind="one_cycle", max_lr=m, total_steps=total_steps, pct_start=pct_start,
                                div_factor=div_factor, final_div_factor=final_div_factor,
                                base_momentum=base_momentum, max_momentum=max_momentum, three_phase=three_phase,
                                linear_anneal=anneal_strategy == "linear", keep_momentum=not cycle_momentum)
                           for m in _per_group(max_lr, len(optimizer.param_groups), "OneCycleLR")]
        if cycle_momentum and not all("momentum" in g or "betas" in g for g in optimizer.param_groups):
            raise ValueError("OneCycleLR: cycle_momentum needs an optimizer with momentum or betas")
        super().__init__(optimizer, last_epoch)

    def step(self):
        super().step()
        if not self.cycle_momentum:
            return
        for g, s in zip(self.optimizer.param_groups, self._schedules):
            m = _C.lr_one_cycle_momentum(s, self.last_epoch)
            if "betas" in g:
                g["betas"] = (m, g["betas"][1])
            else:
                g["momentum"] = m


class ReduceLROnPlateau:
    """Reduces each group's rate by factor once the metric has not improved for more than patience
    steps (PyTorch's arguments); step(metrics) per epoch."""

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0.0, eps=1e-8):
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max' and threshold_mode 'rel' or "
                             f"'abs', got {mode!r} and {threshold_mode!r}")
        self.optimizer = optimizer
        min_lrs = _per_group(min_lr, len(optimizer.param_groups), "ReduceLROnPlateau")
        self._schedules = [dict(kind="plateau", factor=factor, patience=patience if patience else -1,
                                threshold=threshold, threshold_abs=threshold_mode == "abs", mode_max=mode == "max",
                                cooldown=cooldown, min_lr=m, eps=eps) for m in min_lrs]
        self._states = [None] * len(optimizer.param_groups)
        for s in self._schedules:  # the settings are checked now
            _C.lr_plateau_update(s, None, 0.0, 0.0)
        self.last_epoch = 0

    def step(self, metrics):
        metric = float(metrics.item() if hasattr(metrics, "item") else metrics)
        self.last_epoch += 1
        for i, (g, s) in enumerate(zip(self.optimizer.param_groups, self._schedules)):
            g["lr"], self._states[i] = _C.lr_plateau_update(s, self._states[i], metric, g["lr"])

    def get_last_lr(self):
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "states": list(self._states)}

    def load_state_dict(self, state):
        self.last_epoch, self._states = state["last_epoch"], list(state["states"])


class WarmupCosineLR(LRScheduler):
    """nabla's schedule (the C examples'): max_lr (step + 1) / warmup_steps during the warmup, then a
    cosine from the group's lr down to min_lr at total_steps."""

    def __init__(self, optimizer, warmup_steps, total_steps, min_lr=0.0, last_epoch=-1):
        self.warmup, self.total_steps, self.min_lr = warmup_steps, total_steps, min_lr
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [_C.lr_warmup_cosine(self.last_epoch, self.warmup, self.total_steps, base, self.min_lr)
                for base in self.base_lrs]


__all__ = ["LRScheduler", "LambdaLR", "ConstantLR", "StepLR", "MultiStepLR", "ExponentialLR", "LinearLR",
           "PolynomialLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "OneCycleLR", "ReduceLROnPlateau",
           "WarmupCosineLR"]
