"""The GPT example's checkpoint in PyTorch: benchmarks/torch_gpt.py's twin loads nabla's weights with
load_state_dict (strict: the same names and shapes) and gives the same logits.

The twin runs in a process of its own, as it would beside a C program (python/tests/test_gpt.py has
the Python GPT beside the twin in one process)."""
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nabla_ctypes as nb

BUILD = pathlib.Path(os.environ.get("NABLA_LIB", nb.ROOT / "build" / "libnabla.so")).parent
SETTINGS = dict(layers=2, dim=64, heads=4, context=32)

TWIN = textwrap.dedent("""
    import argparse, sys
    import numpy as np, torch
    import safetensors.torch
    sys.path.insert(0, sys.argv[1])
    import torch_gpt
    arch, checkpoint, tokens_file, out = sys.argv[2:6]
    state = {k[len("model."):]: v for k, v in safetensors.torch.load_file(checkpoint).items()
             if k.startswith("model.")}
    twin = torch_gpt.GPT(argparse.Namespace(arch=arch, kv_heads=0, layers=2, dim=64, heads=4, context=32))
    twin.load_state_dict(state, strict=True)
    twin.eval()
    with torch.no_grad():
        logits = twin(torch.tensor(np.load(tokens_file).tolist()))
    np.save(out, np.array(logits.double().tolist()))
""")


def torch_available():
    return subprocess.run([sys.executable, "-c", "import torch, safetensors.torch"], capture_output=True).returncode == 0


@pytest.mark.skipif(not torch_available(), reason="PyTorch is not installed (Debian's python3-torch brings it)")
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_the_twin_loads_the_checkpoint_and_gives_the_same_logits(tmp_path, arch):
    checkpoint = tmp_path / "gpt.safetensors"
    subprocess.run([str(BUILD / "examples" / "train_gpt"), "--device", "cpu", "--arch", arch, "--layers", "2",
                    "--dim", "64", "--heads", "4", "--context", "32", "--batch", "4", "--steps", "3",
                    "--sample", "0", "--dtype", "f32", "--save", str(checkpoint)], check=True, capture_output=True)
    tokens = np.random.default_rng(3).integers(0, 256, (2, 32), dtype=np.int64)
    np.save(tmp_path / "tokens.npy", tokens)
    twin = subprocess.run([sys.executable, "-c", TWIN, str(nb.ROOT / "benchmarks"), arch, str(checkpoint),
                           str(tmp_path / "tokens.npy"), str(tmp_path / "twin.npy")], capture_output=True, text=True,
                          timeout=300)
    assert twin.returncode == 0, twin.stderr
    expected = np.load(tmp_path / "twin.npy")
    got = nb.gpt_logits(checkpoint, tokens, arch=arch, **SETTINGS)
    difference = np.abs(got - expected).max()
    print(f"{arch}: max |nabla - PyTorch| logit difference {difference:.3g} (logits up to {np.abs(expected).max():.3g})")
    assert difference < 1e-4
