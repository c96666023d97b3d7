import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_plugin_module(relative: str):
    """Import a collection file (module_utils etc.) directly, without an installed collection."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem + "_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ALLMENDE_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"
