"""The package under test: the build tree's (NABLA_PYTHON_DIR, default build/python) unless an
installed nabla is asked for (NABLA_PYTHON_DIR=installed)."""
import os
import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
where = os.environ.get("NABLA_PYTHON_DIR", str(ROOT / "build" / "python"))
if where != "installed":
    sys.path.insert(0, where)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
