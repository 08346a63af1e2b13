"""nn.GPT and nn.TransformerBlock: PyTorch's twin (benchmarks/torch_gpt.py) loads their state dict
strictly and gives the same logits and gradients; the KV cache decodes as the full forward does; the
weights start as GPT-2's; and examples/python/train_gpt.py takes the C example's steps on the same
seed (same weights after training, compared through both --save checkpoints)."""
import argparse
import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import nabla as nb
import nabla.nn as nn

try:
    import torch
except ImportError:  # the rest of the file still runs
    torch = None

ROOT = pathlib.Path(__file__).resolve().parents[2]
SMALL = dict(layers=2, dim=64, heads=4, context=32)
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed (Debian's python3-torch brings it)")


def small_gpt(arch, kv_heads=None, seed=1, dtype=None):
    return nn.GPT(256, SMALL["context"], SMALL["layers"], SMALL["dim"], SMALL["heads"], kv_heads, arch=arch,
                  dtype=dtype, generator=nb.Generator(seed))


def torch_twin(arch, kv_heads=None):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import torch_gpt
    finally:
        sys.path.pop(0)
    return torch_gpt.GPT(argparse.Namespace(arch=arch, kv_heads=kv_heads or 0, **SMALL))


def tokens(shape, seed=3):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.int64)


def test_parameter_names_are_the_c_gpts():
    names = list(small_gpt("gpt2").state_dict())
    block = ["norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.out.weight", "attn.out.bias",
             "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"]
    assert names == ["wte.weight", "wpe.weight"] + [f"blocks.{i}.{n}" for i in range(2) for n in block] + \
        ["norm.weight", "norm.bias"]
    llama = small_gpt("llama", kv_heads=2).state_dict()
    assert "wpe.weight" not in llama and "head.weight" in llama and "blocks.0.attn.qkv.bias" not in llama
    assert llama["blocks.0.attn.qkv.weight"].shape == ((4 + 2 * 2) * 16, 64)
    assert llama["blocks.0.mlp.fc1.weight"].shape == (2 * 192, 64)  # 8 * 64 / 3 rounded up to 64, doubled


def test_weights_start_as_gpt2s():
    state = nn.GPT(256, 64, 4, 256, 4, generator=nb.Generator(5)).state_dict()
    for name, t in state.items():
        a = t.numpy().astype(np.float64)
        if t.ndim == 2:
            std = 0.02 / math.sqrt(2 * 4) if name.endswith(("attn.out.weight", "mlp.fc2.weight")) else 0.02
            assert abs(a.mean()) < 4 * std / math.sqrt(a.size), name
            assert abs(a.std() / std - 1) < 6 / math.sqrt(a.size) + 0.01, (name, a.std(), std)
        elif "bias" in name:
            assert not a.any(), name
        else:
            assert (a == 1).all(), name


def test_the_same_seed_gives_the_same_weights_and_another_seed_others():
    a, b, c = (small_gpt("gpt2", seed=s).state_dict() for s in (1, 1, 2))
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert not np.array_equal(a["wte.weight"].numpy(), c["wte.weight"].numpy())


@needs_torch
@pytest.mark.parametrize("arch,kv_heads", [("gpt2", None), ("llama", None), ("llama", 2)])
def test_the_torch_twin_loads_the_state_dict_and_gives_the_same_logits_and_gradients(arch, kv_heads):
    model = small_gpt(arch, kv_heads, dtype=nb.float64)
    twin = torch_twin(arch, kv_heads).double()
    twin.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()},
                         strict=True)
    x, y = tokens((2, 32)), tokens((2, 32), seed=4)
    loss = model.loss(nb.from_numpy(x), nb.from_numpy(y))
    loss.backward()
    logits = twin(torch.from_numpy(x))
    twin_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), torch.from_numpy(y).reshape(-1))
    twin_loss.backward()
    with nb.no_grad():
        got = model(nb.from_numpy(x)).numpy()
    tol = 1e-6 if arch == "llama" else 1e-10  # the twin's rotary angles are float32
    np.testing.assert_allclose(got, logits.detach().numpy(), rtol=tol, atol=tol)
    assert abs(loss.item() - twin_loss.item()) < tol
    twin_params = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), twin_params[name].grad.numpy(), rtol=100 * tol, atol=tol,
                                   err_msg=name)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_the_kv_cache_decodes_as_the_full_forward(arch):
    model = small_gpt(arch, kv_heads=2 if arch == "llama" else None).eval()
    x = nb.from_numpy(tokens((3, 20)))
    with nb.no_grad():
        full = model(x).numpy()
        model.set_kv_cache(3, 32)
        steps = [model(x[:, :12]).numpy()] + [model(x[:, t:t + 1]).numpy() for t in range(12, 20)]
        assert model.blocks[1].attn.cached_positions == 20
        with pytest.raises(ValueError, match="context 32 \\(20 cached\\)"):
            model(x[:, :13])
        with pytest.raises(ValueError, match="KV cache holds 3 sequences"):
            model(x[:2, :1])
        model.set_kv_cache(3, 0)
    np.testing.assert_allclose(np.concatenate(steps, 1), full, rtol=1e-4, atol=1e-5)
    assert model.blocks[0].attn.cached_positions == 0


def test_bad_settings_and_inputs_are_errors_naming_the_layer():
    with pytest.raises(ValueError, match="GPT: arch"):
        nn.GPT(256, 32, 2, 64, 4, arch="bert")
    with pytest.raises(ValueError, match="GPT: needs vocab_size"):
        nn.GPT(256, 32, 0, 64, 4)
    with pytest.raises(ValueError, match="MultiheadAttention: needs heads dividing"):
        nn.GPT(256, 32, 2, 64, 5)
    with pytest.raises(ValueError, match="kv_heads 3"):
        nn.TransformerBlock(64, 4, kv_heads=3)
    with pytest.raises(ValueError, match="TransformerBlock: dropout"):
        nn.TransformerBlock(64, 4, dropout=1.0)
    model = small_gpt("gpt2")
    with pytest.raises(ValueError, match="GPT: needs tokens \\[B, S\\]"):
        model(nb.zeros(2, 33, dtype=nb.int64))
    with pytest.raises(ValueError, match="GPT: needs tokens"):
        model(nb.zeros(33, dtype=nb.int64))
    with pytest.raises(ValueError, match="MultiheadAttention: needs x \\[B, S, 64\\]"):
        model.blocks[0].attn(nb.zeros(2, 3, 8))
    with pytest.raises(ValueError, match="set_kv_cache"):
        model.set_kv_cache(0, 8)


def test_a_short_training_run_lowers_the_loss():
    model = small_gpt("llama", kv_heads=2)
    optimizer = nb.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    text = np.frombuffer(b"the quick brown fox jumps over the lazy dog. " * 8, dtype=np.uint8).astype(np.int64)
    x, y = nb.from_numpy(text[:32 * 4].reshape(4, 32).copy()), nb.from_numpy(text[1:32 * 4 + 1].reshape(4, 32).copy())
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = model.loss(x, y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > math.log(256) - 0.5 and losses[-1] < 0.5 * losses[0], losses


def c_example():
    where = pathlib.Path(os.environ.get("NABLA_PYTHON_DIR", ROOT / "build" / "python"))
    binary = where.parent / "examples" / "train_gpt"
    return binary if binary.exists() else None


@pytest.mark.skipif(c_example() is None, reason="no C train_gpt beside the package (a pip install has none)")
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_the_python_example_takes_the_c_examples_steps(tmp_path, arch):
    text = tmp_path / "text.txt"
    text.write_bytes(bytes(np.random.default_rng(7).integers(32, 127, 20000, dtype=np.uint8)))
    settings = ["--device", "cpu", "--arch", arch, "--layers", "2", "--dim", "64", "--heads", "4", "--context",
                "32", "--batch", "4", "--steps", "4", "--eval-every", "2", "--sample", "0", "--dtype", "f32",
                "--text", str(text)]
    c = subprocess.run([str(c_example())] + settings + ["--save", str(tmp_path / "c.safetensors")],
                       capture_output=True, text=True, check=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    py = subprocess.run([sys.executable, str(ROOT / "examples" / "python" / "train_gpt.py")] + settings +
                        ["--save", str(tmp_path / "py.safetensors"), "--plot", ""],
                        capture_output=True, text=True, env=env, timeout=300)
    assert py.returncode == 0, py.stderr
    theirs = {k[len("model."):]: v for k, v in nb.load(tmp_path / "c.safetensors").items() if k.startswith("model.")}
    ours = nb.load(tmp_path / "py.safetensors")
    assert sorted(ours) == sorted(theirs)
    worst = max(float(np.abs(ours[k].numpy() - theirs[k].numpy()).max()) for k in ours)
    print(f"{arch}: after 4 steps, max |Python - C| weight difference {worst:.3g}")
    assert worst < 1e-5
    c_val, py_val = ([float(line.split("val loss ")[1].split()[0]) for line in out.stdout.splitlines()
                      if "val loss" in line] for out in (c, py))
    assert len(c_val) == 3 and np.allclose(py_val, c_val, atol=2e-4), (c.stdout, py.stdout)  # steps 2, 4, done
