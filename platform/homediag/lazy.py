"""A module imported on its first use (the standard library's ``importlib.util.LazyLoader``).

For the heavy libraries a server worker seldom needs (pyarrow with numpy for the evaluation), so that every
worker does not hold them from its start.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazily(name: str) -> ModuleType:
    """``name`` (a top-level module: finding a submodule would import its package at once) as a module that is
    executed on the first access to one of its attributes."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
