"""nabla.utils.data: datasets, samplers and the DataLoader, as PyTorch's.

A TensorDataset's batches are gathered with one index_select per tensor (no
per-sample Python work); the shuffled order is a randperm of the seeded
generator, the order nabla's C batches (nb_batches) draw, so a Python run
sees the batches of the C example with the same seed."""
import math

from .. import _C


class Dataset:
    """A map-style data set: __getitem__(i) and __len__."""

    def __getitem__(self, index):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError


class TensorDataset(Dataset):
    """Tensors sharing dim 0; item i is the tuple of their rows i."""

    def __init__(self, *tensors):
        if not tensors or any(t.shape[0] != tensors[0].shape[0] for t in tensors):
            raise ValueError("TensorDataset: the tensors must share their first dim")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Sampler:
    """An order of a data set's indices."""

    def __iter__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    """0, 1, ..., len - 1."""

    def __init__(self, data_source):
        self.n = len(data_source)

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


class RandomSampler(Sampler):
    """A new random order each epoch, from generator (None: the default one)."""

    def __init__(self, data_source, generator=None):
        self.n, self.generator = len(data_source), generator

    def order(self):
        return _C.randperm(self.n, self.generator)

    def __iter__(self):
        return iter(self.order().tolist())

    def __len__(self):
        return self.n


class DistributedSampler(Sampler):
    """This rank's share of each epoch: a seeded shuffle every rank draws alike (seed + epoch), padded
    to a multiple of num_replicas with its first indices (or cut with drop_last), every
    num_replicas-th index from rank on, as PyTorch's."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        if num_replicas is None or rank is None:
            from .. import distributed
            num_replicas = distributed.get_world_size() if num_replicas is None else num_replicas
            rank = distributed.get_rank() if rank is None else rank
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank {rank} is not in [0, {num_replicas})")
        self.n, self.num_replicas, self.rank = len(dataset), num_replicas, rank
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, seed, drop_last, 0
        if drop_last:
            self.num_samples = self.n // num_replicas
        else:
            self.num_samples = math.ceil(self.n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch):
        """Call before each epoch so that the shuffle changes."""
        self.epoch = epoch

    def __iter__(self):
        if self.shuffle:
            indices = _C.randperm(self.n, _C.Generator(self.seed + self.epoch)).tolist()
        else:
            indices = list(range(self.n))
        if self.drop_last:
            indices = indices[:self.total_size]
        else:
            while len(indices) < self.total_size:
                indices += indices[:self.total_size - len(indices)]
        return iter(indices[self.rank:self.total_size:self.num_replicas])

    def __len__(self):
        return self.num_samples


def default_collate(samples):
    """Stacks samples: tensors along a new dim 0, numbers into a tensor, tuples field by field."""
    first = samples[0]
    if isinstance(first, _C.Tensor):
        return _C.stack(samples, 0)
    if isinstance(first, (int, float, bool)):
        return _C.tensor(samples)
    if isinstance(first, (tuple, list)):
        return type(first)(default_collate(list(field)) for field in zip(*samples))
    if isinstance(first, dict):
        return {k: default_collate([s[k] for s in samples]) for k in first}
    return samples


class DataLoader:
    """Batches of batch_size from dataset, shuffled each epoch from generator when shuffle; drop_last
    skips a final short batch. A sampler gives the order instead (DistributedSampler)."""

    def __init__(self, dataset, batch_size=1, shuffle=False, sampler=None, drop_last=False,
                 collate_fn=None, generator=None, num_workers=0, pin_memory=False):
        if batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be positive, got {batch_size}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle are exclusive")
        self.dataset, self.batch_size, self.drop_last = dataset, batch_size, drop_last
        self.collate_fn = collate_fn or default_collate
        self.generator = generator
        self.sampler = sampler or (RandomSampler(dataset, generator) if shuffle else SequentialSampler(dataset))

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        fast = isinstance(self.dataset, TensorDataset) and self.collate_fn is default_collate
        if fast and isinstance(self.sampler, RandomSampler):
            order = self.sampler.order()
        elif fast:
            order = _C.tensor(list(iter(self.sampler)), dtype=_C.int64)
        else:
            order = list(iter(self.sampler))
        n = len(order)
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            if self.drop_last and stop - start < self.batch_size:
                return
            if fast:
                rows = order[start:stop]
                yield tuple(_C.index_select(t, 0, rows.to(t.device)) for t in self.dataset.tensors)
            else:
                yield self.collate_fn([self.dataset[i] for i in order[start:stop]])
