"""The front end's CUDA paths: moves, ops and autograd against the CPU, the fused half-precision
attention, DLPack exchange with PyTorch and CuPy on the GPU, modules and optimizers moved to the
GPU, the GPT in bf16 with its KV cache, out-of-memory and mixed devices, and the Python examples
on CUDA. Everything skips without a GPU; benchmarks/gpu/run.sh --parts python runs it on one."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import nabla as nb
import nabla.nn as nn
import nabla.nn.functional as F

pytestmark = pytest.mark.skipif(not nb.cuda.is_available(),
                                reason="no GPU (or a build without CUDA): benchmarks/gpu/run.sh --parts python "
                                       "runs these on one")
ROOT = pathlib.Path(__file__).resolve().parents[2]


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def on(device, a, dtype=nb.float32):
    return nb.tensor(a, dtype=dtype, device=device)


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16", "int64", "bool"])
def test_to_cuda_and_back_keeps_values_and_dtype(dtype):
    x = nb.tensor(randn(3, 5) > 0 if dtype == "bool" else np.round(randn(3, 5) * 8), dtype=getattr(nb, dtype))
    y = x.to("cuda")
    assert y.device.type == "cuda" and y.device.index == 0 and y.dtype == x.dtype and y.shape == x.shape
    assert y.cpu().tolist() == x.tolist()
    assert x.t().cuda().cpu().tolist() == x.t().tolist()  # a strided view moves too


OPS = {
    "add broadcast": lambda d: on(d, randn(4, 1, 5)) + on(d, randn(3, 1), nb.float32),
    "mul scalar and exp": lambda d: (on(d, randn(7, 9)) * 0.5).exp(),
    "matmul": lambda d: on(d, randn(33, 70)) @ on(d, randn(70, 17)),
    "batched matmul": lambda d: nb.matmul(on(d, randn(3, 8, 16)), on(d, randn(3, 16, 5))),
    "sum and mean over dims": lambda d: on(d, randn(4, 6, 5)).sum(dim=(0, 2), keepdim=True) *
    on(d, randn(4, 6, 5)).mean(1, keepdim=True),
    "softmax": lambda d: on(d, randn(6, 300)).softmax(-1),
    "layer_norm": lambda d: F.layer_norm(on(d, randn(4, 64)), (64,), on(d, randn(64)), on(d, randn(64))),
    "cross_entropy": lambda d: F.cross_entropy(on(d, randn(16, 10)),
                                               nb.tensor(np.arange(16) % 10, dtype=nb.int64, device=d)),
    "conv2d": lambda d: F.conv2d(on(d, randn(2, 3, 9, 9)), on(d, randn(4, 3, 3, 3)), None, 1, 1),
    "depthwise conv2d": lambda d: F.conv2d(on(d, randn(2, 6, 8, 8)), on(d, randn(6, 1, 3, 3)), None, 2, 1, 1, 6),
    "max_pool2d": lambda d: F.max_pool2d(on(d, randn(2, 3, 8, 8)), 2),
    "indexing": lambda d: on(d, randn(6, 7))[1:5:2, nb.tensor([0, 3, 6], dtype=nb.int64, device=d)],
    "masked assignment": lambda d: _masked(d),
    "sort indices": lambda d: on(d, randn(5, 300)).sort(dim=-1, descending=True).indices,
    "topk along dim 0": lambda d: nb.topk(on(d, randn(50, 4)), 5, dim=0).values,
    "cumsum and logcumsumexp": lambda d: on(d, randn(3, 500)).cumsum(1) + on(d, randn(3, 500)).logcumsumexp(1),
    "searchsorted": lambda d: nb.searchsorted(on(d, np.sort(randn(40))), on(d, randn(7, 3))),
    "multinomial": lambda d: nb.multinomial(on(d, np.abs(randn(6, 900))), 20,
                                            generator=nb.Generator().manual_seed(5)),
}


def _masked(d):
    x = on(d, randn(5, 5))
    x[x > 0] = 0.0
    return x


@pytest.mark.parametrize("name", OPS)
def test_ops_on_cuda_match_the_cpu(name):
    want, got = OPS[name]("cpu"), OPS[name]("cuda")
    assert got.device.type == "cuda" and got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got.cpu().numpy(), want.numpy(), rtol=2e-4, atol=2e-5, err_msg=name)


def test_autograd_on_cuda_matches_the_cpu():
    grads = []
    for device in ("cpu", "cuda"):
        x = on(device, randn(8, 12)).requires_grad_()
        w = on(device, randn(12, 6, seed=1)).requires_grad_()
        loss = ((x @ w).relu() * on(device, randn(8, 6, seed=2))).sum() + (w ** 2).mean()
        loss.backward()
        grads.append((loss.item(), x.grad.cpu().numpy(), w.grad.cpu().numpy()))
    (l0, gx0, gw0), (l1, gx1, gw1) = grads
    assert abs(l0 - l1) < 1e-4 * abs(l0)
    np.testing.assert_allclose(gx1, gx0, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gw1, gw0, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("head_dim", [64, 128])
def test_the_fused_half_precision_attention_matches_float64(dtype, head_dim):
    q, k, v = (randn(2, 4, 80, head_dim, seed=s) for s in range(3))
    want = nb.attention_composed(*(nb.tensor(a, dtype=nb.float64) for a in (q, k, v)), is_causal=True).numpy()
    got = nb.flash_attention(*(on("cuda", a, getattr(nb, dtype)) for a in (q, k, v)), is_causal=True)
    tol = 2e-2 if dtype == "bfloat16" else 4e-3
    np.testing.assert_allclose(got.float().cpu().numpy(), want, rtol=tol, atol=tol)


def test_numpy_of_a_cuda_tensor_is_a_clear_error():
    with pytest.raises((TypeError, RuntimeError), match="GPU"):
        nb.zeros(3, device="cuda").numpy()


def test_mixed_devices_are_an_error_naming_both():
    with pytest.raises(RuntimeError, match="cuda"):
        nb.zeros(3) + nb.zeros(3, device="cuda")


def test_out_of_memory_is_a_memory_error_and_the_gpu_stays_usable():
    with pytest.raises(MemoryError, match="cuda"):
        nb.empty(1 << 45, dtype=nb.float32, device="cuda")  # 128 TiB
    x = nb.ones(1000, device="cuda")
    assert x.sum().item() == 1000


def test_dlpack_with_pytorch_on_cuda_shares_memory_both_ways():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    if not torch.cuda.is_available():
        pytest.skip("this PyTorch has no CUDA")
    t = torch.arange(12, dtype=torch.float32, device="cuda").reshape(3, 4)
    n = nb.from_dlpack(t)
    assert n.device.type == "cuda" and n.shape == (3, 4) and n.__dlpack_device__() == (2, 0)
    t.add_(1)
    torch.cuda.synchronize()
    assert np.array_equal(n.cpu().numpy(), np.arange(1, 13).reshape(3, 4))
    m = nb.arange(6.0, device="cuda").view(2, 3)
    back = torch.from_dlpack(m)
    assert back.is_cuda and back.shape == (2, 3)
    m += 10
    nb.cuda.synchronize()
    assert torch.equal(back.cpu(), torch.arange(10.0, 16.0).reshape(2, 3))
    strided = torch.from_dlpack(nb.arange(12.0, device="cuda").view(3, 4).t())
    assert torch.equal(strided.cpu(), torch.arange(12.0).reshape(3, 4).t())


def test_dlpack_with_cupy_shares_memory_both_ways():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
    c = cupy.arange(6, dtype=cupy.float32)
    n = nb.from_dlpack(c)
    c += 1
    cupy.cuda.Device().synchronize()
    assert np.array_equal(n.cpu().numpy(), np.arange(1, 7))
    back = cupy.from_dlpack(nb.full((4,), 2.5, device="cuda"))
    assert cupy.asnumpy(back).tolist() == [2.5] * 4


def small_cnn(device, seed):
    g = nb.Generator(seed)
    return nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1, bias=False, device=device, generator=g), nn.BatchNorm2d(8, device=device),
                         nn.ReLU(), nn.DepthwiseSeparableConv2d(8, 16, 3, 2, device=device, generator=g),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10, device=device, generator=g))


def test_a_model_trains_on_cuda_as_on_the_cpu():
    x, y = randn(32, 1, 12, 12), np.arange(32) % 10
    losses, states = {}, {}
    for device in ("cpu", "cuda"):
        model = small_cnn(device, 3)
        optimizer = nb.optim.AdamW(model.parameters(), lr=1e-2)
        xs, ys = on(device, x), nb.tensor(y, dtype=nb.int64, device=device)
        losses[device] = []
        for _ in range(5):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xs), ys)
            loss.backward()
            optimizer.step()
            losses[device].append(loss.item())
        states[device] = {k: v.cpu().numpy() for k, v in model.state_dict().items()}
    np.testing.assert_allclose(losses["cuda"], losses["cpu"], rtol=1e-3)
    assert losses["cuda"][-1] < losses["cuda"][0]
    for name, value in states["cpu"].items():
        np.testing.assert_allclose(states["cuda"][name], value, rtol=1e-2, atol=1e-3, err_msg=name)


def test_model_to_cuda_moves_parameters_and_buffers():
    model = small_cnn("cpu", 1).to("cuda")
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert all(b.device.type == "cuda" for b in model.buffers())
    assert model(nb.zeros(2, 1, 12, 12, device="cuda")).device.type == "cuda"


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_the_gpt_in_bf16_on_cuda_matches_float32_on_the_cpu(arch):
    cpu = nn.GPT(256, 64, 2, 128, 2, arch=arch, generator=nb.Generator(1))
    gpu = nn.GPT(256, 64, 2, 128, 2, arch=arch, device="cuda", dtype=nb.bfloat16, generator=nb.Generator(1))
    for (name, a), (_, b) in zip(cpu.state_dict().items(), gpu.state_dict().items()):  # the same draws
        np.testing.assert_allclose(b.float().cpu().numpy(), a.numpy(), rtol=1e-2, atol=1e-3, err_msg=name)
    tokens = np.random.default_rng(2).integers(0, 256, (4, 64))
    x_cpu, x_gpu = (nb.tensor(tokens, dtype=nb.int64, device=d) for d in ("cpu", "cuda"))
    want = cpu.loss(x_cpu[:, :-1], x_cpu[:, 1:]).item()
    got = gpu.loss(x_gpu[:, :-1], x_gpu[:, 1:])
    assert abs(got.item() - want) < 0.03 * want
    got.backward()
    assert all(p.grad is not None and p.grad.device.type == "cuda" for p in gpu.parameters())
    gpu.eval()
    with nb.no_grad():
        full = gpu(x_gpu[:, :20]).float().cpu().numpy()
        gpu.set_kv_cache(4, 64)
        steps = [gpu(x_gpu[:, :12]).float().cpu().numpy()] + \
            [gpu(x_gpu[:, t:t + 1]).float().cpu().numpy() for t in range(12, 20)]
        gpu.set_kv_cache(4, 0)
    np.testing.assert_allclose(np.concatenate(steps, 1), full, rtol=0.05, atol=0.05)


def run_example(name, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "python" / name), "--device", "cuda",
                           "--plot", "", *args], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stdout)
    return done.stdout


def test_the_gpt_example_runs_on_cuda():
    out = run_example("train_gpt.py", "--layers", "2", "--dim", "128", "--heads", "2", "--context", "64",
                      "--batch", "8", "--steps", "30", "--eval-every", "15", "--sample", "40")
    assert "bf16 on cuda" in out and "final val loss" in out and "--- sample" in out


def test_the_cnn_example_runs_on_cuda():
    if not (os.environ.get("NABLA_FASHION_MNIST_DIR") or pathlib.Path("/usr/share/datasets/fashion-mnist").exists()):
        pytest.skip("no Fashion-MNIST (NABLA_FASHION_MNIST_DIR or Debian's dataset-fashion-mnist)")
    out = run_example("train_cnn.py", "--limit", "3200")
    accuracy = float(out.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 50, out
