"""The optimizers: trajectories against PyTorch's own classes in float64 (with two param
groups and a parameter that skips a step), Lion and FTRL against their formulas in numpy,
state_dict round trips, and bad settings."""
import numpy as np
import pytest

import nabla as nb
import nabla.nn as nn

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

# name: (settings of group 0, settings of group 1, the constructor's); torch 1.13 has every
# one of these. PyTorch's Adagrad starts every group's sum from the constructor's
# initial_accumulator_value (nabla takes each group's; the same when it is given there).
TORCH_RULES = {
    "SGD": ({"lr": 0.1, "momentum": 0.9, "dampening": 0.2, "weight_decay": 0.01},
            {"lr": 0.05, "momentum": 0.5, "nesterov": True}),
    "Adam": ({"lr": 0.1, "weight_decay": 0.1, "amsgrad": True}, {"lr": 0.01, "betas": (0.5, 0.9)}),
    "AdamW": ({"lr": 0.1, "amsgrad": True}, {"lr": 0.01, "weight_decay": 0.5, "maximize": True}),
    "Adagrad": ({"lr": 0.1, "lr_decay": 0.1}, {"weight_decay": 0.2}, {"initial_accumulator_value": 0.3}),
    "Adadelta": ({"lr": 0.5, "rho": 0.8}, {"weight_decay": 0.1}),
    "RMSprop": ({"lr": 0.01, "centered": True, "momentum": 0.9}, {"alpha": 0.9, "weight_decay": 0.1}),
    "Adamax": ({"lr": 0.1}, {"lr": 0.02, "weight_decay": 0.1, "betas": (0.8, 0.9)}),
    "RAdam": ({"lr": 0.1}, {"lr": 0.01, "betas": (0.9, 0.9), "weight_decay": 0.1}),
}


def trajectory(module, name, settings, init, grads, skip):
    """The parameters after each step of module.optim.name over two groups [p0, p1], [p2];
    grads[t][i] is parameter i's gradient at step t; p1 has none at step skip."""
    tensor = (lambda a: torch.tensor(a, dtype=torch.float64)) if module is torch else (
        lambda a: nb.tensor(a, dtype=nb.float64))
    params = [(torch.nn.Parameter(tensor(a)) if module is torch else nn.Parameter(tensor(a))) for a in init]
    groups = [{"params": params[:2], **settings[0]}, {"params": params[2:], **settings[1]}]
    opt = getattr(module.optim, name)(groups, **(settings[2] if len(settings) > 2 else {}))
    out = []
    for t, step_grads in enumerate(grads):
        opt.zero_grad(set_to_none=True)  # torch 1.13 zeroes them otherwise, and steps with 0
        for i, (p, g) in enumerate(zip(params, step_grads)):
            if not (i == 1 and t == skip):
                p.grad = tensor(g)
        opt.step()
        out.append([p.detach().numpy().copy() for p in params])
    return out, opt


@needs_torch
@pytest.mark.parametrize("name", sorted(TORCH_RULES))
def test_each_rule_follows_pytorch_with_groups_and_a_skipped_step(rng, name):
    init = [rng.standard_normal(s) for s in [(3, 4), (5,), (2, 3)]]
    grads = [[rng.standard_normal(a.shape) for a in init] for _ in range(5)]
    got, opt = trajectory(nb, name, TORCH_RULES[name], init, grads, skip=2)
    want, _ = trajectory(torch, name, TORCH_RULES[name], init, grads, skip=2)
    for t, (g, w) in enumerate(zip(got, want)):
        for i, (a, b) in enumerate(zip(g, w)):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"{name} step {t} param {i}")
    steps = [s["step"] for s in opt.state_dict()["state"].values()]
    assert steps == [5, 4, 5]


def test_nadam_against_pytorch_2s_formula(rng):
    """torch 1.13's NAdam counts mu_t twice in its second step size (fixed in PyTorch 2.0); the
    reference is PyTorch 2's algorithm, with two groups and decoupled decay in one."""
    settings = [dict(lr=0.1, momentum_decay=0.01), dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True)]
    init = [rng.standard_normal(4), rng.standard_normal(3)]
    grads = [[rng.standard_normal(a.shape) for a in init] for _ in range(4)]
    params = [nn.Parameter(nb.tensor(a, dtype=nb.float64)) for a in init]
    opt = nb.optim.NAdam([{"params": [params[0]], **settings[0]}, {"params": [params[1]], **settings[1]}])
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = nb.tensor(g, dtype=nb.float64)
        opt.step()
    for i, (o, a) in enumerate(zip(settings, init)):
        p, m, v, product = a.copy(), 0.0, 0.0, 1.0
        psi, wd, b1, b2 = o.get("momentum_decay", 4e-3), o.get("weight_decay", 0.0), 0.9, 0.999
        for t, step_grads in enumerate(grads, 1):
            g = step_grads[i]
            if o.get("decoupled_weight_decay"):
                p = p * (1 - o["lr"] * wd)
            else:
                g = g + wd * p
            mu, mu_next = (b1 * (1 - 0.5 * 0.96 ** (k * psi)) for k in (t, t + 1))
            product *= mu
            m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            denom = np.sqrt(v / (1 - b2 ** t)) + 1e-8
            p = p - o["lr"] * (1 - mu) / (1 - product) * g / denom - o["lr"] * mu_next / (1 - product * mu_next) * m / denom
        np.testing.assert_allclose(params[i].detach().numpy(), p, rtol=1e-12, err_msg=f"group {i}")
        assert opt.state_dict()["state"][i]["mu_product"] == pytest.approx(product, rel=1e-14)


def test_lion_and_ftrl_against_their_formulas(rng):
    p0, grads = rng.standard_normal(6), [rng.standard_normal(6) for _ in range(4)]
    p = nn.Parameter(nb.tensor(p0, dtype=nb.float64))
    opt = nb.optim.Lion([p], lr=0.01, betas=(0.8, 0.95), weight_decay=0.5)
    ref, m = p0.copy(), np.zeros(6)
    for g in grads:
        p.grad = nb.tensor(g, dtype=nb.float64)
        opt.step()
        ref = ref * (1 - 0.01 * 0.5) - 0.01 * np.sign(0.8 * m + 0.2 * g)
        m = 0.95 * m + 0.05 * g
    np.testing.assert_allclose(p.detach().numpy(), ref, rtol=1e-12)

    q = nn.Parameter(nb.tensor(p0, dtype=nb.float64))
    lr, l1, l2, beta, power = 0.5, 0.05, 0.1, 0.3, -0.5
    opt = nb.optim.FTRL([q], lr=lr, l1=l1, l2=l2, beta=beta, initial_accumulator_value=0.2)
    w, n, z = p0.copy(), np.full(6, 0.2), np.zeros(6)
    for g in grads:
        q.grad = nb.tensor(g, dtype=nb.float64)
        opt.step()
        # McMahan et al. 2013, algorithm 1, with Keras's 2 l2
        sigma = (np.sqrt(n + g * g) - np.sqrt(n)) / lr
        z, n = z + g - sigma * w, n + g * g
        w = np.where(np.abs(z) <= l1, 0.0, -(z - np.sign(z) * l1) / ((beta + np.sqrt(n)) / lr + 2 * l2))
    np.testing.assert_allclose(q.detach().numpy(), w, rtol=1e-12, atol=1e-15)
    assert (q.detach().numpy() == 0).any() or (np.abs(z) > l1).all()
    s = opt.state_dict()["state"][0]
    np.testing.assert_allclose(s["accumulator"].numpy(), n, rtol=1e-12)
    np.testing.assert_allclose(s["linear"].numpy(), z, rtol=1e-12)
    assert nb.optim.Ftrl is nb.optim.FTRL


def test_state_dict_round_trips_and_changed_settings_apply(rng):
    p0 = rng.standard_normal(4)
    a = nn.Parameter(nb.tensor(p0, dtype=nb.float64))
    opt = nb.optim.NAdam([a], lr=0.1)
    for _ in range(3):
        a.grad = nb.tensor(p0, dtype=nb.float64)
        opt.step()
    state = opt.state_dict()
    assert state["state"][0]["step"] == 3 and 0 < state["state"][0]["mu_product"] < 1
    b = nn.Parameter(nb.tensor(a.detach().numpy(), dtype=nb.float64))
    again = nb.optim.NAdam([b], lr=0.5)
    again.load_state_dict(state)
    assert again.param_groups[0]["lr"] == 0.1
    a.grad = b.grad = nb.tensor(p0, dtype=nb.float64)
    opt.step()
    again.step()
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())

    c = nn.Parameter(nb.ones(2, dtype=nb.float64))
    sgd = nb.optim.SGD([c], lr=0.1)
    c.grad = nb.ones(2, dtype=nb.float64)
    sgd.step()
    sgd.param_groups[0]["momentum"] = 0.5  # reaches the C optimizer at the next step
    for _ in range(2):
        c.grad = nb.ones(2, dtype=nb.float64)
        sgd.step()
    assert c.tolist() == pytest.approx([1 - 0.1 - 0.1 - 0.15] * 2)
    d = nn.Parameter(nb.ones(2, dtype=nb.float64))
    sgd.add_param_group({"params": [d], "lr": 1.0})
    d.grad = nb.ones(2, dtype=nb.float64)
    sgd.step()
    assert d.tolist() == [0.0, 0.0] and sgd.state_dict()["state"][0]["step"] == 4  # c kept its gradient


def test_bad_settings_name_the_problem():
    p = nn.Parameter(nb.ones(2))
    with pytest.raises(ValueError, match="beta1 must be finite and in"):
        nb.optim.Adam([p], betas=(1.5, 0.9))
    with pytest.raises(ValueError, match="Nesterov momentum needs momentum > 0"):
        nb.optim.SGD([p], nesterov=True)
    with pytest.raises(ValueError, match="FTRL needs lr > 0"):
        nb.optim.FTRL([p], lr=0)
    with pytest.raises(ValueError, match="lr_power must be finite"):
        nb.optim.FTRL([p], lr_power=1)
    with pytest.raises(ValueError, match="same tensor"):
        nb.optim.RMSprop([{"params": [p]}, {"params": [p]}])
    opt = nb.optim.Adagrad([p])
    opt.param_groups[0]["eps"] = -1
    p.grad = nb.ones(2)
    with pytest.raises(ValueError, match="eps must be finite"):
        opt.step()
    with pytest.raises(ValueError, match="unknown option 'bogus'"):
        nb._C.Optimizer("sgd", [{"params": [p], "bogus": 1}])
    with pytest.raises(ValueError, match="unknown kind 'adamq'"):
        nb._C.Optimizer("adamq", [])


# name: (nabla's and PyTorch's arguments); each runs over two groups of their own base rates
TORCH_SCHEDULES = {
    "ConstantLR": {"factor": 0.5, "total_iters": 4},
    "StepLR": {"step_size": 3, "gamma": 0.5},
    "MultiStepLR": {"milestones": [2, 5, 9], "gamma": 0.3},
    "ExponentialLR": {"gamma": 0.9},
    "LinearLR": {"start_factor": 0.25, "end_factor": 0.9, "total_iters": 7},
    "PolynomialLR": {"total_iters": 8, "power": 2.0},
    "CosineAnnealingLR": {"T_max": 6, "eta_min": 0.001},
    "CosineAnnealingWarmRestarts": {"T_0": 3, "T_mult": 2, "eta_min": 0.002},
    "OneCycleLR": {"max_lr": [0.5, 0.05], "total_steps": 20},
    "OneCycleLR_three_linear": {"max_lr": 0.5, "total_steps": 20, "three_phase": True, "anneal_strategy": "linear"},
    "LambdaLR": {"lr_lambda": [lambda t: 0.9 ** t, lambda t: 1 / (t + 1)]},
}


def schedule_rates(module, name, kwargs, steps, opt_name="SGD"):
    Sched = getattr(module.optim.lr_scheduler, name.split("_")[0])
    if module is torch:
        params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]
    else:
        params = [nn.Parameter(nb.zeros(2)), nn.Parameter(nb.zeros(2))]
    extra = {"momentum": 0.9} if opt_name == "SGD" else {}
    opt = getattr(module.optim, opt_name)([{"params": params[:1], "lr": 0.1}, {"params": params[1:], "lr": 0.02}],
                                          **extra)
    sched = Sched(opt, **kwargs)
    rates, momenta = [], []
    for _ in range(steps):
        rates.append([g["lr"] for g in opt.param_groups])
        momenta.append([g.get("momentum", g.get("betas", (None,))[0]) for g in opt.param_groups])
        opt.step()
        sched.step()
    return rates, momenta


@needs_torch
@pytest.mark.parametrize("name", sorted(TORCH_SCHEDULES))
def test_each_schedule_follows_pytorch_per_group(name):
    steps = 20 if name.startswith("OneCycle") else 30
    got, got_m = schedule_rates(nb, name, TORCH_SCHEDULES[name], steps)
    want, want_m = schedule_rates(torch, name, TORCH_SCHEDULES[name], steps)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15, err_msg=name)
    np.testing.assert_allclose(got_m, want_m, rtol=1e-9, err_msg=name + " momentum")


@needs_torch
def test_one_cycle_cycles_adams_beta1_and_warmup_precedes_any_schedule():
    got, got_m = schedule_rates(nb, "OneCycleLR", {"max_lr": 0.3, "total_steps": 15}, 15, "Adam")
    want, want_m = schedule_rates(torch, "OneCycleLR", {"max_lr": 0.3, "total_steps": 15}, 15, "Adam")
    np.testing.assert_allclose(got, want, rtol=1e-9)
    np.testing.assert_allclose(got_m, want_m, rtol=1e-9)
    # a linear warmup of 4 steps before StepLR is SequentialLR([LinearLR, StepLR], milestones=[4])
    p = nn.Parameter(nb.zeros(2))
    opt = nb.optim.SGD([p], lr=0.1)
    sched = nb.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5, warmup_steps=4, warmup_start_factor=0.2)
    q = torch.nn.Parameter(torch.zeros(2))
    topt = torch.optim.SGD([q], lr=0.1)
    tsched = torch.optim.lr_scheduler.SequentialLR(topt, [
        torch.optim.lr_scheduler.LinearLR(topt, start_factor=0.2, total_iters=4),
        torch.optim.lr_scheduler.StepLR(topt, step_size=3, gamma=0.5)], milestones=[4])
    for _ in range(15):
        assert opt.param_groups[0]["lr"] == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)
        opt.step(), topt.step()
        sched.step(), tsched.step()


@needs_torch
@pytest.mark.parametrize("kwargs", [{}, {"mode": "max", "threshold_mode": "abs", "threshold": 0.05, "patience": 0,
                                         "cooldown": 2, "factor": 0.5, "min_lr": 0.004}])
def test_reduce_on_plateau_follows_pytorch(rng, kwargs):
    metrics = np.concatenate([np.linspace(1, 0.5, 5), np.full(30, 0.5), rng.uniform(0, 1, 20)])
    rates = []
    for module in (nb, torch):
        p = nn.Parameter(nb.zeros(2)) if module is nb else torch.nn.Parameter(torch.zeros(2))
        opt = module.optim.SGD([p], lr=0.1)
        sched = module.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
        out = []
        for m in metrics:
            sched.step(float(m))
            out.append(opt.param_groups[0]["lr"])
        rates.append(out)
    np.testing.assert_allclose(rates[0], rates[1], rtol=1e-12)
    assert min(rates[0]) < 0.1


def test_schedules_reject_bad_settings():
    p = nn.Parameter(nb.zeros(2))
    opt = nb.optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="step_size > 0"):
        nb.optim.lr_scheduler.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="milestones must be >= 0 and in order"):
        nb._C.lr_schedule_at({"kind": "multi_step", "milestones": [3, 1]}, 0, 0.1)
    with pytest.raises(ValueError, match="past the one-cycle schedule's total_steps 4"):
        sched = nb.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=4)
        for _ in range(5):
            sched.step()
    with pytest.raises(ValueError, match="sets gamma = 0.5, which a cosine schedule does not read"):
        nb._C.lr_schedule_at({"kind": "cosine", "total_steps": 3, "gamma": 0.5}, 0, 0.1)
    with pytest.raises(ZeroDivisionError):
        nb.optim.lr_scheduler.LambdaLR(opt, lambda t: 1 / t)
    with pytest.raises(ValueError, match="factor in \\[0, 1\\)"):
        nb.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=1.5)
    with pytest.raises(ValueError, match="cycle_momentum needs an optimizer with momentum or betas"):
        nb.optim.lr_scheduler.OneCycleLR(nb.optim.Adagrad([p]), max_lr=1.0, total_steps=4)
