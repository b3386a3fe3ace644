"""A worker's heap (``homediag.heap``): what a module imported after the start brings (functions, classes) is
taken out of the collector's full passes once the watcher sees the import, and nothing is frozen without one."""

from __future__ import annotations

import gc
import importlib
import sys
from pathlib import Path

import pytest

from homediag import heap


def _tracked(obj: object) -> bool:
    """Whether the next full collection walks ``obj`` (frozen objects are in no generation)."""
    return any(o is obj for o in gc.get_objects())


@pytest.fixture
def late_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "homediag_late_import.py").write_text("def used_later():\n    return 1\n\nclass Later:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("homediag_late_import", None)


def test_a_module_imported_after_the_start_is_frozen_when_seen(late_module: None) -> None:
    known = len(sys.modules)
    module = importlib.import_module("homediag_late_import")
    assert _tracked(module.used_later) and _tracked(module.Later)
    assert heap.freeze_if_imported(known) == len(sys.modules)
    assert not _tracked(module.used_later) and not _tracked(module.Later)


def test_nothing_is_frozen_without_a_new_import() -> None:
    known = len(sys.modules)
    made_since = [[n] for n in range(3)]
    assert heap.freeze_if_imported(known) == known
    assert _tracked(made_since)
