#!/usr/bin/env python3
"""Writes python/nabla/_C.pyi, the type stubs of the extension, from its op table's docstrings
(each begins with the call's signature: "sum(input, dim=None, keepdim=False) -> Tensor: ...").
Run after binding an op: PYTHONPATH=build/python python3 python/tools/make_stubs.py"""
import pathlib
import re

import nabla._C as C

OUT = pathlib.Path(__file__).resolve().parents[1] / "nabla" / "_C.pyi"
RETURNS = {"Tensor": "Tensor", "tuple": "tuple[Tensor, ...]", "int": "int", "bool": "bool", "list": "list",
           "number": "float", "dict": "dict"}


def signature(name, doc, method):
    m = re.match(r"\s*[\w.]+\((.*?)\)\s*(?:->\s*([\w.]+))?", doc or "")
    params = [p.strip() for p in (m.group(1).split(",") if m and m.group(1).strip() else [])]
    params = [p for p in params if p and p != "..."]
    if method and params and params[0].split("=")[0] in ("input", "tensor"):
        params = params[1:]
    typed = []
    for p in params:
        key, _, default = p.partition("=")
        key = key.strip()
        if key.startswith("*"):
            typed.append(f"{key}: Any")
        else:
            typed.append(f"{key}: Any = ..." if default else f"{key}: Any")
    if method:
        typed.insert(0, "self")
    ret = RETURNS.get(m.group(2), "Any") if m and m.group(2) else "Any"
    return f"def {name}({', '.join(typed)}) -> {ret}: ..."


def main():
    ops = {n: getattr(C, n) for n in dir(C) if type(getattr(C, n)).__name__ == "op"}
    methods = {n: v for n, v in vars(C.Tensor).items() if type(v).__name__ == "op"}
    lines = ['"""Type stubs of nabla._C (written by python/tools/make_stubs.py)."""',
             "from typing import Any, Iterator", "", "class dtype:", "    name: str", "    itemsize: int",
             "    is_floating_point: bool", "", "class device:",
             "    def __init__(self, type: Any, index: int | None = ...) -> None: ...", "    type: str",
             "    index: int | None", "", "class Generator:", "    def __init__(self, seed: int = ...) -> None: ...",
             "    def manual_seed(self, seed: int) -> Generator: ...", "    def initial_seed(self) -> int: ...",
             "    def get_state(self) -> tuple[int, int]: ...", "    def set_state(self, state: tuple[int, int]) -> None: ...",
             "", "class Tensor:",
             "    def __init__(self, data: Any, dtype: Any = ..., device: Any = ..., requires_grad: bool = ...) -> None: ...",
             "    shape: tuple[int, ...]", "    dtype: dtype", "    device: device", "    ndim: int",
             "    requires_grad: bool", "    grad: Tensor | None", "    is_leaf: bool", "    grad_fn: str | None",
             "    data: Tensor", "    T: Tensor", "    mT: Tensor", "    is_cuda: bool", "    itemsize: int",
             "    def numpy(self) -> Any: ...", "    def tolist(self) -> Any: ...", "    def item(self) -> float: ...",
             "    def __array__(self, dtype: Any = ..., copy: bool | None = ...) -> Any: ...",
             "    def __dlpack__(self, stream: Any = ...) -> Any: ...",
             "    def __dlpack_device__(self) -> tuple[int, int]: ...",
             "    def __getitem__(self, key: Any) -> Tensor: ...", "    def __setitem__(self, key: Any, value: Any) -> None: ...",
             "    def __len__(self) -> int: ...", "    def __iter__(self) -> Iterator[Tensor]: ...",
             "    def __float__(self) -> float: ...", "    def __int__(self) -> int: ...",
             "    def __bool__(self) -> bool: ...", "    def __index__(self) -> int: ..."]
    for op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
               "lt", "le", "gt", "ge", "eq", "ne"):
        lines.append(f"    def __{op}__(self, other: Any) -> Tensor: ...  # type: ignore[override]")
        if op not in ("lt", "le", "gt", "ge", "eq", "ne"):
            lines.append(f"    def __r{op}__(self, other: Any) -> Tensor: ...")
            lines.append(f"    def __i{op}__(self, other: Any) -> Tensor: ...")
    lines += ["    def __neg__(self) -> Tensor: ...", "    def __abs__(self) -> Tensor: ...",
              "    def __invert__(self) -> Tensor: ..."]
    for name, op in sorted(methods.items()):
        lines.append("    " + signature(name, op.__doc__, True))
    lines.append("")
    for name in sorted(n for n in dir(C) if isinstance(getattr(C, n), C.dtype)):
        lines.append(f"{name}: dtype")
    lines.append("")
    for name, op in sorted(ops.items()):
        lines.append(signature(name, op.__doc__, False))
    for name in ("manual_seed", "set_grad_enabled", "is_grad_enabled", "cuda_device_count", "cuda_synchronize",
                 "cpu_memory_stats", "use_deterministic_algorithms", "promote_types", "clip_grad_norm_", "clip_grad_value_",
                 "lr_warmup_cosine", "lr_schedule_at", "lr_one_cycle_momentum", "lr_plateau_update", "init_",
                 "calculate_gain", "safetensors_save", "safetensors_load", "fashion_mnist"):
        lines.append(f"def {name}(*args: Any) -> Any: ...")
    lines += ["class Optimizer:", "    def __init__(self, *args: Any, **kwargs: Any) -> None: ...",
              "    def step(self) -> None: ...", "    def zero_grad(self) -> None: ...",
              "    def options(self, group: int) -> dict: ...",
              "    def set_options(self, group: int, options: dict) -> None: ...",
              "    def state(self, i: int) -> dict: ...", "    def set_state(self, i: int, state: dict) -> None: ...",
              "class ProcessGroup:",
              "    def __init__(self, timeout: float = ..., unchecked: bool = ...) -> None: ...",
              "    def rank(self) -> int: ...", "    def size(self) -> int: ...", "    def local_rank(self) -> int: ...",
              "    def barrier(self) -> None: ...", "    def destroy(self) -> None: ...",
              "    def all_reduce(self, tensor: Tensor, op: int = ..., async_op: bool = ...) -> Work | None: ...",
              "    def broadcast(self, tensor: Tensor, src: int, async_op: bool = ...) -> Work | None: ...",
              "    def all_gather_into_tensor(self, output: Tensor, input: Tensor, async_op: bool = ...) -> Work | None: ...",
              "    def reduce_scatter_tensor(self, output: Tensor, input: Tensor, op: int = ..., "
              "async_op: bool = ...) -> Work | None: ...",
              "class Work:", "    def wait(self) -> bool: ...", "    def is_completed(self) -> bool: ...",
              "class DDP:",
              "    def __init__(self, group: ProcessGroup, params: list, buffers: list, bucket_mib: float = ..., "
              "error_on_unused: bool = ...) -> None: ...",
              "    def finish(self) -> None: ...", "    def backward(self, loss: Tensor, gradient: Any = ...) -> None: ...",
              "    def set_sync(self, on: bool) -> None: ...", "    def broadcast_buffers(self) -> None: ...",
              "    def bucket_count(self) -> int: ...",
              "def sync_batch_norm(*args: Any) -> Tensor: ...", "_after_backward: list",
              "ops_bound: int", ""]
    OUT.write_text("\n".join(lines))
    print(f"make_stubs: {len(ops)} functions and {len(methods)} methods in {OUT}")


if __name__ == "__main__":
    main()
