"""nabla.distributed under mpirun: the collectives against their formulas, DistributedDataParallel
against one process training on the global batch, SyncBatchNorm against BatchNorm of the concatenated
batch, and the errors. Run: mpirun -np 2 python3 -m pytest -p no:cacheprovider python/tests/distributed"""
import os

import numpy as np
import pytest

import nabla as nb
import nabla.distributed as dist

WORLD = int(os.environ.get("OMPI_COMM_WORLD_SIZE", os.environ.get("PMI_SIZE", "0")))
pytestmark = pytest.mark.skipif(WORLD < 2, reason="run under mpirun -np 2 (or more): "
                                "mpirun -np 2 python3 -m pytest -p no:cacheprovider python/tests/distributed")


@pytest.fixture(scope="module", autouse=True)
def group():
    try:
        dist.init_process_group(timeout=60)
    except NotImplementedError as e:  # a build without MPI
        pytest.skip(str(e))
    yield
    dist.barrier()


def test_rank_and_world_size():
    assert dist.is_initialized() and dist.get_world_size() == WORLD
    assert dist.get_rank() == int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "-1")))
    assert 0 <= dist.get_local_rank() < WORLD
    with pytest.raises(RuntimeError, match="already initialized"):
        dist.init_process_group()


def test_all_reduce_every_op():
    r, w = dist.get_rank(), WORLD
    base = np.arange(1.0, 6.0)
    mine = (r + 1) * base
    everyone = np.stack([(k + 1) * base for k in range(w)])
    for op, want in ((dist.ReduceOp.SUM, everyone.sum(0)), (dist.ReduceOp.AVG, everyone.mean(0)),
                     (dist.ReduceOp.MAX, everyone.max(0)), (dist.ReduceOp.MIN, everyone.min(0)),
                     (dist.ReduceOp.PRODUCT, everyone.prod(0))):
        t = nb.tensor(mine, dtype=nb.float64)
        assert dist.all_reduce(t, op=op) is None
        np.testing.assert_allclose(t.numpy(), want, rtol=1e-14)
    i = nb.tensor([r, 10 * r], dtype=nb.int64)
    dist.all_reduce(i)
    assert i.tolist() == [sum(range(w)), 10 * sum(range(w))]


def test_async_work_and_views():
    t = nb.full((1000,), float(dist.get_rank() + 1), dtype=nb.float32)
    work = dist.all_reduce(t, async_op=True)
    assert isinstance(work, dist.Work)
    assert work.wait() is True and work.is_completed()
    assert t.tolist() == [WORLD * (WORLD + 1) / 2] * 1000


def test_broadcast_from_every_root():
    for root in range(WORLD):
        t = nb.tensor([dist.get_rank(), 7.5], dtype=nb.float64)
        dist.broadcast(t, src=root)
        assert t.tolist() == [root, 7.5]


def test_all_gather_and_reduce_scatter():
    r = dist.get_rank()
    mine = nb.tensor([[r, r + 0.5]], dtype=nb.float64)
    out = nb.empty(WORLD, 2, dtype=nb.float64)
    dist.all_gather_into_tensor(out, mine)
    assert out.tolist() == [[k, k + 0.5] for k in range(WORLD)]
    parts = [nb.empty(1, 2, dtype=nb.float64) for _ in range(WORLD)]
    dist.all_gather(parts, mine)
    assert [p.tolist() for p in parts] == [[[k, k + 0.5]] for k in range(WORLD)]
    full = nb.arange(2 * WORLD, dtype=nb.float64) * (r + 1)
    piece = nb.empty(2, dtype=nb.float64)
    dist.reduce_scatter_tensor(piece, full)
    total = sum(k + 1 for k in range(WORLD))
    assert piece.tolist() == [total * (2 * r), total * (2 * r + 1)]


def test_a_destroyed_group_refuses_calls_and_outlives_its_work():
    group = nb._C.ProcessGroup(60.0)
    t = nb.ones(4, dtype=nb.float64)
    work = group.all_reduce(t, async_op=True)
    group.destroy()  # a Work still uses it: only closed
    with pytest.raises(RuntimeError, match="all_reduce: the process group was destroyed"):
        group.all_reduce(t)
    with pytest.raises(RuntimeError, match="get_rank: the process group was destroyed"):
        dist.get_rank(group)
    assert work.wait() is True
    assert t.tolist() == [float(WORLD)] * 4
    del work  # the last user: the communicator is freed now
    group.destroy()  # again: nothing left to do


def test_disagreements_and_bad_arguments_are_errors():
    r = dist.get_rank()
    t = nb.zeros(3 + r, dtype=nb.float32)  # each rank a different size
    with pytest.raises(RuntimeError, match="all_reduce"):
        dist.all_reduce(t)
    with pytest.raises(ValueError, match="unknown reduce op 9"):
        dist.all_reduce(nb.zeros(2), op=9)
    with pytest.raises(TypeError):
        dist.all_reduce([1.0, 2.0])
    with pytest.raises(ValueError, match="tensor_list has 1 tensors"):
        dist.all_gather([nb.zeros(2)], nb.zeros(2))
    dist.barrier()  # the ranks are still in step


class Net(nb.nn.Module):
    def __init__(self, seed):
        super().__init__()
        g = nb.Generator(seed)
        self.l1 = nb.nn.Linear(6, 8, dtype=nb.float64, generator=g)
        self.l2 = nb.nn.Linear(8, 3, dtype=nb.float64, generator=g)
        self.unused = nb.nn.Linear(3, 2, dtype=nb.float64, generator=g)

    def forward(self, x):
        return self.l2(self.l1(x).silu())


def data(rows, seed=5):
    g = nb.Generator(seed)
    return nb.randn(rows, 6, generator=g, dtype=nb.float64), nb.randn(rows, 3, generator=g, dtype=nb.float64)


def relative_difference(a, b):
    return max(float(np.max(np.abs(p.detach().numpy() - q.detach().numpy()) / np.maximum(np.abs(q.detach().numpy()), 1e-2)))
               for p, q in zip(a, b))


@pytest.mark.parametrize("bucket_cap_mb", [1e-9, 25.0])
def test_ddp_equals_one_process_on_the_global_batch(bucket_cap_mb):
    local, steps = 4, 4
    r, rows = dist.get_rank(), 4 * WORLD
    x, t = data(rows * steps)
    mine, single = Net(100 + r), Net(100)
    ddp = nb.nn.parallel.DistributedDataParallel(mine, bucket_cap_mb=bucket_cap_mb)
    assert ddp.bucket_count() == (6 if bucket_cap_mb < 1 else 1)
    assert relative_difference(list(mine.parameters()), list(single.parameters())) == 0, "rank 0's broadcast"
    opt = nb.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    ref = nb.optim.SGD(single.parameters(), lr=0.1, momentum=0.9)
    for s in range(steps):
        xs, ts = x[s * rows + r * local:s * rows + (r + 1) * local], t[s * rows + r * local:s * rows + (r + 1) * local]
        opt.zero_grad()
        nb.nn.functional.mse_loss(ddp(xs), ts).backward()
        opt.step()
        ref.zero_grad()
        nb.nn.functional.mse_loss(single(x[s * rows:(s + 1) * rows]), t[s * rows:(s + 1) * rows]).backward()
        ref.step()
    assert relative_difference(list(mine.parameters()), list(single.parameters())) < 1e-10
    assert [n for n, _ in ddp.named_parameters()][0] == "module.l1.weight"


def test_ddp_no_sync_accumulates_and_explicit_backward():
    r, local = dist.get_rank(), 2
    rows = local * WORLD
    x, t = data(2 * rows, seed=9)
    mine, single = Net(7), Net(7)
    ddp = nb.nn.parallel.DistributedDataParallel(mine)
    with ddp.no_sync():
        nb.nn.functional.mse_loss(ddp(x[r * local:(r + 1) * local]), t[r * local:(r + 1) * local]).backward()
    nb.nn.functional.mse_loss(ddp(x[rows + r * local:rows + (r + 1) * local]),
                              t[rows + r * local:rows + (r + 1) * local]).backward()
    for m in (0, 1):
        nb.nn.functional.mse_loss(single(x[m * rows:(m + 1) * rows]), t[m * rows:(m + 1) * rows]).backward()
    for p, q in zip(list(mine.parameters())[:4], list(single.parameters())[:4]):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_sync_batch_norm_equals_batch_norm_of_the_concatenated_batch():
    r = dist.get_rank()
    sizes = [3 + k for k in range(WORLD)]  # uneven parts
    g = nb.Generator(21)
    x = nb.randn(sum(sizes), 4, 5, 2, generator=g, dtype=nb.float64)
    c = nb.randn(sum(sizes), 4, 5, 2, generator=g, dtype=nb.float64)
    lo, hi = sum(sizes[:r]), sum(sizes[:r + 1])
    sync, plain = nb.nn.SyncBatchNorm(4, momentum=0.3, dtype=nb.float64), nb.nn.BatchNorm2d(4, momentum=0.3, dtype=nb.float64)
    xs = x[lo:hi].detach().requires_grad_()
    xg = x.detach().requires_grad_()
    ys, yg = sync(xs), plain(xg)
    np.testing.assert_allclose(ys.detach().numpy(), yg[lo:hi].detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sync.running_mean.numpy(), plain.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(sync.running_var.numpy(), plain.running_var.numpy(), rtol=1e-12)
    (ys * c[lo:hi]).sum().backward()
    (yg * c).sum().backward()
    np.testing.assert_allclose(xs.grad.numpy(), xg.grad[lo:hi].numpy(), rtol=1e-10, atol=1e-12)
    w = sync.weight.grad.clone()
    dist.all_reduce(w)  # each rank's part of the weight gradient; data parallelism sums them
    np.testing.assert_allclose(w.numpy(), plain.weight.grad.numpy(), rtol=1e-10)
    sync.eval()
    np.testing.assert_allclose(sync(xs).detach().numpy(), plain.eval()(xg)[lo:hi].detach().numpy(), rtol=1e-12)


def test_convert_sync_batchnorm_keeps_parameters_and_statistics():
    model = nb.nn.Sequential(nb.nn.Conv2d(1, 3, 3), nb.nn.BatchNorm2d(3), nb.nn.ReLU())
    bn = model[1]
    converted = nb.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert converted is model and isinstance(model[1], nb.nn.SyncBatchNorm)
    assert model[1].weight is bn.weight and model[1].running_var is bn.running_var
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    y = model(nb.randn(2, 1, 5, 5, generator=nb.Generator(dist.get_rank())))
    assert y.shape == (2, 3, 3, 3)
