"""The package's surface: the stubs list every bound op, and every public name has a docstring."""
import inspect
import pathlib

import nabla as nb
import nabla._C as C

STUBS = (pathlib.Path(__file__).resolve().parents[1] / "nabla" / "_C.pyi").read_text()


def test_stubs_list_every_op():
    functions = [n for n in dir(C) if type(getattr(C, n)).__name__ == "op"]
    methods = [n for n, v in vars(C.Tensor).items() if type(v).__name__ == "op"]
    assert len(functions) > 100 and len(methods) > 100
    missing = [n for n in set(functions) | set(methods) if f"def {n}(" not in STUBS]
    assert not missing, f"python/tools/make_stubs.py must be run: {missing}"


def test_every_public_name_has_a_docstring():
    undocumented = []
    for module in (nb, nb.nn, nb.nn.functional, nb.nn.init, nb.optim, nb.optim.lr_scheduler, nb.utils.data,
                   nb.autograd, nb.cuda, nb.datasets):
        for name in dir(module):
            obj = getattr(module, name)
            if name.startswith("_") or inspect.ismodule(obj) or isinstance(obj, (C.dtype, int, float, str)):
                continue
            if callable(obj) and not (getattr(obj, "__doc__", None) or "").strip():
                undocumented.append(f"{module.__name__}.{name}")
    assert not undocumented, undocumented
