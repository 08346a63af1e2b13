"""nabla.nn.parallel: DistributedDataParallel, as PyTorch's, over nabla's C data parallelism (nb_ddp).

    dist.init_process_group()
    model = DistributedDataParallel(model)   # rank 0's parameters broadcast to every rank
    loss = loss_fn(model(x_shard), y_shard)
    loss.backward()                          # the gradients are the ranks' average
    opt.step()

Gradients are averaged in buckets (bucket_cap_mb) in reverse registration order; a bucket's
all-reduce starts as soon as backward has completed its gradients, overlapping the rest of backward.
Parameters no loss reaches average zeros (find_unused_parameters=True makes that an error instead)."""
import contextlib

from .. import _C
from .. import distributed as dist
from .modules import Module


class DistributedDataParallel(Module):
    """Wraps module for data-parallel training over process_group (the default group: None).
    device_ids and output_device are accepted for PyTorch's sake: the module's parameters say where
    it runs. broadcast_buffers sends rank 0's buffers (BatchNorm's running statistics) at each
    training forward."""

    def __init__(self, module, device_ids=None, output_device=None, broadcast_buffers=True, process_group=None,
                 bucket_cap_mb=25.0, find_unused_parameters=False):
        super().__init__()
        group = process_group or dist._default("DistributedDataParallel")
        self.module = module
        params = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
        buffers = [(name, b) for name, b in module.named_buffers() if b is not None]
        object.__setattr__(self, "_ddp", _C.DDP(group, params, buffers, float(bucket_cap_mb),
                                                bool(find_unused_parameters)))
        object.__setattr__(self, "_broadcast_buffers", broadcast_buffers and bool(buffers))
        object.__setattr__(self, "_finish", self._finish_backward)

    def forward(self, *args, **kwargs):
        if self.training and _C.is_grad_enabled():
            if self._broadcast_buffers:
                self._ddp.broadcast_buffers()
            if self._finish not in _C._after_backward:
                _C._after_backward.append(self._finish)  # the next backward ends with the average
        return self.module(*args, **kwargs)

    def _finish_backward(self):
        _C._after_backward.remove(self._finish)
        self._ddp.finish()

    @contextlib.contextmanager
    def no_sync(self):
        """Backward inside keeps the gradients local, accumulating; the first one after averages them all."""
        self._ddp.set_sync(False)
        try:
            yield
        finally:
            self._ddp.set_sync(True)

    def bucket_count(self):
        return self._ddp.bucket_count()


DDP = DistributedDataParallel
