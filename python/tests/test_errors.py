"""C errors become Python exceptions with the library's message; nothing crashes; references are
counted right."""
import gc
import tracemalloc

import numpy as np
import pytest

import nabla as nb


def test_status_mapping():
    a, b = nb.ones(2, 3), nb.ones(4, 5)
    with pytest.raises(ValueError, match="nb_matmul"):
        a @ b
    with pytest.raises(ValueError, match="shape"):
        a.view(7)
    with pytest.raises(TypeError):
        nb.ones(2).sum(dim="x")
    with pytest.raises(TypeError, match="dtype"):
        nb.zeros(2, dtype="complex")
    with pytest.raises(IndexError):
        a.sum(dim=5)
    with pytest.raises(MemoryError):
        nb.empty(1 << 40, 1 << 20)
    with pytest.raises((ValueError, MemoryError)):
        nb.empty(1 << 62, 1 << 62)  # overflows
    with pytest.raises(NotImplementedError):
        nb.flash_attention(*(nb.ones(1, 1, 2, 4, dtype=nb.float16),) * 3)  # no fused CPU kernel
    with pytest.raises(ValueError, match="device"):
        nb.zeros(2, device="tpu")
    if nb.cuda.device_count() == 0:
        with pytest.raises(RuntimeError):
            nb.zeros(2, device="cuda")
    nb.ones(3).sum()  # still usable


def test_argument_errors_name_the_argument():
    with pytest.raises(TypeError, match="unexpected keyword argument 'dimm'"):
        nb.ones(3).sum(dimm=0)
    with pytest.raises(TypeError, match="missing required argument 'other'"):
        nb.add(nb.ones(1))
    with pytest.raises(TypeError, match="input must be a Tensor"):
        nb.exp([1.0])
    with pytest.raises(TypeError, match="at most"):
        nb.exp(nb.ones(1), 2, 3)
    with pytest.raises(TypeError, match="multiple values"):
        nb.softmax(nb.ones(2), 0, dim=0)
    with pytest.raises(ValueError, match="ragged"):
        nb.tensor([[1, 2], [3]])
    with pytest.raises(TypeError):
        nb.tensor([["a"]])
    with pytest.raises(TypeError):
        nb.nn.Linear(2, 2)(nb.ones(2, 2)) + "x"


def test_help_texts():
    assert "matrix product" in nb.matmul.__doc__
    assert nb.Tensor.sum.__doc__.startswith("sum(")
    assert nb.nn.Linear.__doc__ and nb.optim.AdamW.__doc__ and nb.utils.data.DataLoader.__doc__


def test_a_million_tensors_leak_nothing():
    x = nb.ones(4)
    gc.collect()
    before = nb.cpu_memory_stats()["allocated"]
    tracemalloc.start()
    first, _ = tracemalloc.get_traced_memory()
    for _ in range(250_000):
        y = x + 1  # a tensor
        v = y[1:]  # a view
        w = v.unsqueeze(0)
        z = w.numpy()
        del y, v, w, z
    gc.collect()
    last, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    after = nb.cpu_memory_stats()["allocated"]
    print(f"[ refs ] 1,000,000 tensors and views: nabla's allocated bytes {before} -> {after}, "
          f"Python's traced bytes {first} -> {last}")
    assert after == before, (before, after)
    assert last - first < 100_000, (first, last)


def test_distributed_before_init_process_group_is_an_error():
    import nabla.distributed as dist
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="get_rank: the default process group is not initialized"):
        dist.get_rank()
    with pytest.raises(RuntimeError, match="all_reduce: the default process group is not initialized"):
        dist.all_reduce(nb.zeros(2))
    with pytest.raises(ValueError, match="backend 'gloo' is not one of"):
        dist.init_process_group(backend="gloo")
    with pytest.raises(RuntimeError, match="DistributedDataParallel: the default process group"):
        nb.nn.parallel.DistributedDataParallel(nb.nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match="SyncBatchNorm: the default process group"):
        nb.nn.SyncBatchNorm(3)(nb.zeros(2, 3))
