"""nabla.distributed: torch.distributed's API over nabla's MPI communicator (NCCL for CUDA tensors).

    # mpirun -np 2 python3 train.py
    import nabla.distributed as dist
    dist.init_process_group()                      # every process of the MPI job
    rank, world = dist.get_rank(), dist.get_world_size()
    dist.all_reduce(t, op=dist.ReduceOp.AVG)       # in place
    model = nb.nn.parallel.DistributedDataParallel(model)

Every rank calls the same collectives in the same order; the ranks first check that they agree on
each (dtype, size, op, root), so a mismatch is a RuntimeError naming both sides, and a rank that dies
or stops answering is a RuntimeError on the others after the timeout (seconds; None: 300)."""
import atexit

from . import _C

__all__ = ["ReduceOp", "init_process_group", "destroy_process_group", "is_available", "is_initialized",
           "get_rank", "get_world_size", "get_local_rank", "all_reduce", "broadcast", "all_gather",
           "all_gather_into_tensor", "reduce_scatter_tensor", "barrier", "Work"]

Work = _C.Work
_group = None


class ReduceOp:
    """The reductions of all_reduce and reduce_scatter_tensor (AVG: float dtypes only)."""
    SUM, AVG, MAX, MIN, PRODUCT = 0, 1, 2, 3, 4


def is_available():
    """True: nabla always has the distributed API (a build without MPI fails init_process_group)."""
    return True


def init_process_group(backend=None, timeout=None, unchecked=False):
    """Joins every process of the MPI job (mpirun, srun). backend: None, "mpi" or "nccl" (CUDA tensors
    go over NCCL whatever it says); timeout: seconds a collective may take (a float or a timedelta);
    unchecked skips the agreement check before each collective."""
    global _group
    if _group is not None:
        raise RuntimeError("init_process_group: the default process group is already initialized")
    if backend not in (None, "mpi", "nccl"):
        raise ValueError(f"init_process_group: backend '{backend}' is not one of 'mpi', 'nccl'")
    if timeout is not None and hasattr(timeout, "total_seconds"):
        timeout = timeout.total_seconds()
    _group = _C.ProcessGroup(float(timeout or 0), bool(unchecked))


def destroy_process_group():
    """Frees the default group (ending MPI if nabla started it)."""
    global _group
    if _group is not None:
        _group.destroy()
        _group = None


atexit.register(destroy_process_group)


def is_initialized():
    return _group is not None


def _default(fn):
    if _group is None:
        raise RuntimeError(f"{fn}: the default process group is not initialized (call init_process_group first)")
    return _group


def get_rank(group=None):
    """This process's rank, 0 .. world size - 1."""
    return (group or _default("get_rank")).rank()


def get_world_size(group=None):
    return (group or _default("get_world_size")).size()


def get_local_rank(group=None):
    """The rank among this machine's processes (the GPU to use)."""
    return (group or _default("get_local_rank")).local_rank()


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """tensor = op over the ranks' tensors, in place; a Work to wait on when async_op."""
    return (group or _default("all_reduce")).all_reduce(tensor, op, async_op)


def broadcast(tensor, src, group=None, async_op=False):
    """tensor = rank src's tensor, on every rank."""
    return (group or _default("broadcast")).broadcast(tensor, src, async_op)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
    """output (world size times input's first dim) = the ranks' inputs concatenated along dim 0."""
    return (group or _default("all_gather_into_tensor")).all_gather_into_tensor(output_tensor, input_tensor,
                                                                                async_op)


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """tensor_list[r] = rank r's tensor (one tensor per rank, each of tensor's shape)."""
    g = group or _default("all_gather")
    if async_op:
        raise NotImplementedError("all_gather: async_op=True (all_gather_into_tensor has it)")
    if len(tensor_list) != g.size():
        raise ValueError(f"all_gather: tensor_list has {len(tensor_list)} tensors for {g.size()} ranks")
    flat = _C.empty(g.size() * tensor.numel(), dtype=tensor.dtype, device=tensor.device)
    g.all_gather_into_tensor(flat, tensor.contiguous().reshape(-1))
    for r, out in enumerate(tensor_list):
        out.copy_(flat[r * tensor.numel():(r + 1) * tensor.numel()].reshape(tensor.shape))


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op=False):
    """output = this rank's slice along dim 0 of op over the ranks' inputs (world size times output's)."""
    return (group or _default("reduce_scatter_tensor")).reduce_scatter_tensor(output, input, op, async_op)


def barrier(group=None):
    """Waits until every rank has called it."""
    (group or _default("barrier")).barrier()
