"""Modules, optimizers, schedulers, data and files against their formulas."""
import math

import numpy as np
import pytest

import nabla as nb
import nabla.nn as nn
import nabla.nn.functional as F

try:
    import torch
except ImportError:
    torch = None


def test_module_registration_and_state_dict(tmp_path):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)
            self.bn = nn.BatchNorm1d(3)
            self.blocks = nn.ModuleList([nn.Linear(3, 3), nn.ReLU()])
            self.scale = 2.0

        def forward(self, x):
            return self.blocks[0](self.bn(self.fc(x))) * self.scale

    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["fc.weight", "fc.bias", "bn.weight", "bn.bias", "blocks.0.weight", "blocks.0.bias"]
    assert [n for n, _ in net.named_buffers()] == ["bn.running_mean", "bn.running_var"]
    assert len(list(net.children())) == 3 and isinstance(net.fc.weight, nn.Parameter)
    assert "(fc): Linear(in_features=4, out_features=3, bias=True)" in repr(net)
    out = net(nb.randn(5, 4))
    assert out.shape == (5, 3)
    net.eval()
    assert not net.bn.training and not net.blocks[1].training
    sd = net.state_dict()
    nb.save(sd, tmp_path / "net.safetensors", metadata={"step": "3"})
    other = Net()
    missing, unexpected = other.load_state_dict(nb.load(tmp_path / "net.safetensors"))
    assert not missing and not unexpected
    for k, v in other.state_dict().items():
        assert v.tolist() == sd[k].tolist()
    with pytest.raises(RuntimeError, match="missing"):
        other.load_state_dict({"fc.weight": sd["fc.weight"]})
    net.zero_grad()


def test_linear_and_conv_layers_against_numpy(rng):
    lin = nn.Linear(4, 3, dtype=nb.float64)
    x = rng.standard_normal((2, 4))
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    np.testing.assert_allclose(lin(nb.tensor(x)).detach().numpy(), x @ w.T + b, rtol=1e-12)
    std = lin.weight.detach().numpy().std()
    assert 0.3 < std < 1.2  # Kaiming: sqrt(2 / 4) = 0.71
    conv = nn.Conv2d(2, 3, 3, padding=1, dtype=nb.float64)
    img = rng.standard_normal((1, 2, 5, 5))
    y = conv(nb.tensor(img)).detach().numpy()
    k = conv.weight.detach().numpy()
    padded = np.pad(img, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = np.zeros((1, 3, 5, 5))
    for o in range(3):
        for i in range(5):
            for j in range(5):
                ref[0, o, i, j] = (padded[0, :, i:i + 3, j:j + 3] * k[o]).sum()
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-12)


def test_batch_norm_updates_running_statistics(rng):
    bn = nn.BatchNorm2d(3, dtype=nb.float64)
    x = rng.standard_normal((4, 3, 2, 2)) * 2 + 1
    y = bn(nb.tensor(x)).detach().numpy()
    mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3))
    np.testing.assert_allclose(y, (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5),
                               rtol=1e-10)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mean, rtol=1e-10)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * x.var((0, 2, 3), ddof=1), rtol=1e-10)


def test_dropout_scales_and_is_identity_in_eval():
    d = nn.Dropout(0.25)
    x = nb.ones(10000)
    y = d(x).numpy()
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)} and abs((y == 0).mean() - 0.25) < 0.03
    d.eval()
    assert d(x).tolist() == x.tolist()


def test_multihead_attention_matches_a_numpy_reference(rng):
    mha = nn.MultiheadAttention(8, 2, causal=True, dtype=nb.float64)
    x = rng.standard_normal((1, 3, 8))
    y = mha(nb.tensor(x)).detach().numpy()
    wq = mha.qkv.weight.detach().numpy()
    qkv = x @ wq.T + mha.qkv.bias.detach().numpy()
    q, k, v = qkv[..., :8], qkv[..., 8:16], qkv[..., 16:]
    out = np.zeros((1, 3, 8))
    for h in range(2):
        s = slice(4 * h, 4 * h + 4)
        scores = q[0, :, s] @ k[0, :, s].T / 2.0 + np.triu(np.full((3, 3), -np.inf), 1)
        p = np.exp(scores - scores.max(1, keepdims=True))
        out[0, :, s] = (p / p.sum(1, keepdims=True)) @ v[0, :, s]
    ref = out @ mha.out.weight.detach().numpy().T + mha.out.bias.detach().numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-12)


def test_sgd_momentum_and_adamw_against_their_formulas(rng):
    p0 = rng.standard_normal(5)
    grads = [rng.standard_normal(5) for _ in range(3)]
    p = nn.Parameter(nb.tensor(p0, dtype=nb.float64))
    opt = nb.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    ref, buf = p0.copy(), None
    for g in grads:
        p.grad = nb.tensor(g, dtype=nb.float64)
        opt.step()
        d = g + 0.01 * ref
        buf = d if buf is None else 0.9 * buf + d
        ref = ref - 0.1 * buf
    np.testing.assert_allclose(p.detach().numpy(), ref, rtol=1e-12)

    q = nn.Parameter(nb.tensor(p0, dtype=nb.float64))
    opt = nb.optim.AdamW([q], lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
    ref, m, v = p0.copy(), np.zeros(5), np.zeros(5)
    for t, g in enumerate(grads, 1):
        q.grad = nb.tensor(g, dtype=nb.float64)
        opt.step()
        ref = ref * (1 - 0.01 * 0.1)
        m, v = 0.9 * m + 0.1 * g, 0.99 * v + 0.01 * g * g
        ref = ref - 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.99 ** t)) + 1e-8)
    np.testing.assert_allclose(q.detach().numpy(), ref, rtol=1e-10)
    state = opt.state_dict()
    assert state["state"][0]["step"] == 3
    np.testing.assert_allclose(state["state"][0]["exp_avg"].numpy(), m, rtol=1e-10)
    again = nb.optim.AdamW([nn.Parameter(nb.tensor(p0, dtype=nb.float64))], lr=0.5)
    again.load_state_dict(state)
    assert again.param_groups[0]["lr"] == 0.01 and again.state_dict()["state"][0]["step"] == 3


def test_param_groups_and_schedulers():
    a, b = nn.Parameter(nb.ones(2)), nn.Parameter(nb.ones(2))
    opt = nb.optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad, b.grad = nb.ones(2), nb.ones(2)
    opt.step()
    assert a.tolist() == pytest.approx([0.9, 0.9]) and b.tolist() == [0.0, 0.0]
    sched = nb.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    cos = nb.optim.lr_scheduler.CosineAnnealingLR(nb.optim.SGD([a], lr=1.0), T_max=4)
    assert cos.get_last_lr() == [1.0]
    for _ in range(2):
        cos.step()
    assert cos.get_last_lr()[0] == pytest.approx(0.5)
    warm = nb.optim.lr_scheduler.WarmupCosineLR(nb.optim.SGD([a], lr=1.0), 4, 10)
    assert warm.get_last_lr()[0] == pytest.approx(0.25)
    p = nn.Parameter(nb.tensor([3.0, 4.0]))
    p.grad = nb.tensor([3.0, 4.0])
    norm = nn.utils.clip_grad_norm_([p], 1.0)
    assert norm.item() == pytest.approx(5.0) and p.grad.tolist() == pytest.approx([0.6, 0.8], rel=1e-5)


def test_clip_grad_value_clamps_each_element():
    p, q, idle = nn.Parameter(nb.zeros(4)), nn.Parameter(nb.zeros(4, dtype=nb.float16)), nn.Parameter(nb.zeros(4))
    p.grad = nb.tensor([-3.0, 0.25, 2.0, float("nan")])
    q.grad = nb.tensor([1.5, -0.5, 0.0, -0.75], dtype=nb.float16)
    assert nn.utils.clip_grad_value_([p, q, idle], 0.5) is None
    got = p.grad.tolist()
    assert got[:3] == [-0.5, 0.25, 0.5] and math.isnan(got[3])
    assert q.grad.dtype == nb.float16 and q.grad.tolist() == [0.5, -0.5, 0.0, -0.5]
    assert idle.grad is None
    nn.utils.clip_grad_value_(p, 0.1)  # one tensor
    assert p.grad.tolist()[:3] == pytest.approx([-0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="nb_clip_grad_value: needs parameters and clip_value >= 0, got 1 and -1"):
        nn.utils.clip_grad_value_([p], -1)
    with pytest.raises(TypeError, match="clip_grad_value_"):
        nn.utils.clip_grad_value_([p, 3], 1.0)


def test_dataloader_batches_and_shuffles():
    x, y = nb.arange(10).float().unsqueeze(1), nb.arange(10)
    ds = nb.utils.data.TensorDataset(x, y)
    batches = list(nb.utils.data.DataLoader(ds, batch_size=4))
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    shuffled = nb.utils.data.DataLoader(ds, batch_size=4, shuffle=True, drop_last=True,
                                        generator=nb.Generator(3))
    seen = [b[1].tolist() for b in shuffled]
    assert len(seen) == 2 and len(set(sum(seen, []))) == 8 and seen != [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(shuffled) == 2
    shards = [list(nb.utils.data.DistributedSampler(ds, 3, r, seed=1)) for r in range(3)]
    assert sorted(sum(shards, [])[:10]) == list(range(10)) or len(set(sum(shards, []))) == 10
    assert all(len(s) == 4 for s in shards)


def test_a_short_training_run_learns():
    nb.manual_seed(0)
    x = nb.randn(256, 2)
    y = ((x[:, 0] * x[:, 1]) > 0).long()
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = nb.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert losses[-1] < 0.3 * losses[0] and accuracy > 0.9


def test_initializers_match_pytorchs_distributions():
    """Each initializer's std against the formula (and PyTorch's calculate_gain), over 2^16 draws."""
    init = nb.nn.init
    w = nb.empty(64, 256, 2, 2)  # fan_in 1024, fan_out 256
    cases = [
        (lambda: init.xavier_uniform_(w, gain=2.0), 2 * math.sqrt(2 / 1280)),
        (lambda: init.xavier_normal_(w), math.sqrt(2 / 1280)),
        (lambda: init.kaiming_uniform_(w, a=math.sqrt(5)), math.sqrt(1 / 3) / 32),
        (lambda: init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"), math.sqrt(2 / 256)),
        (lambda: init.kaiming_normal_(w, nonlinearity="tanh"), 5 / 3 / 32),
        (lambda: init.lecun_normal_(w), 1 / 32),
        (lambda: init.lecun_uniform_(w), 1 / 32),
        (lambda: init.variance_scaling_(w, 2.0, "fan_avg", "untruncated_normal"), math.sqrt(2 / 640)),
        (lambda: init.uniform_(w, -3, 3), math.sqrt(3)),
        (lambda: init.normal_(w, 0, 0.5), 0.5),
    ]
    for fill, std in cases:
        values = fill().numpy()
        assert abs(values.std() - std) < 0.02 * std and abs(values.mean()) < 0.02 * std
    values = init.trunc_normal_(w, 0.0, 1.0, -1.0, 1.0).numpy()
    assert values.min() >= -1 and values.max() <= 1 and abs(values.std() - 0.5396) < 0.01
    if torch is not None:
        for name, param in [("tanh", None), ("relu", None), ("leaky_relu", 0.2), ("selu", None), ("conv2d", None)]:
            assert init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))
    q = init.orthogonal_(nb.empty(5, 3, 2, dtype=nb.float64), gain=2.0).numpy().reshape(5, 6)
    np.testing.assert_allclose(q @ q.T, 4 * np.eye(5), atol=1e-12)
    assert init.eye_(nb.empty(2, 3)).tolist() == [[1, 0, 0], [0, 1, 0]]
    d = init.dirac_(nb.empty(4, 2, 3), groups=2).numpy()
    assert d.sum() == 4 and d[3, 1, 1] == 1
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.kaiming_normal_(w, nonlinearity="swish")
    with pytest.raises(ValueError, match="groups must be > 0 and divide"):
        init.dirac_(nb.empty(4, 2, 3), groups=3)
