"""Which model the app uses: FKS_MODEL, else the file runs/active_model.txt names (if it exists), else the shipped one."""
import pytest

from core.paths import SHIPPED_MODEL
from core.registry import POINTER_NAME, active_model_path


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.delenv("FKS_MODEL", raising=False)
    monkeypatch.setenv("FKS_RUNS_DIR", str(tmp_path / "runs"))
    (tmp_path / "runs").mkdir()
    return tmp_path / "runs"


def _point_at(runs, target) -> None:
    (runs / POINTER_NAME).write_text(f"{target}\n")  # a trailing newline, as an editor would leave it


def test_no_pointer_means_the_shipped_model(runs):
    assert active_model_path() == SHIPPED_MODEL


def test_a_pointer_to_an_existing_file_wins_over_the_shipped_model(runs, tmp_path):
    model = tmp_path / "run-a" / "model.keras"
    model.parent.mkdir()
    model.write_bytes(b"not checked here")
    _point_at(runs, model)
    assert active_model_path() == model


def test_fks_model_wins_over_the_pointer(runs, tmp_path, monkeypatch):
    pointed = tmp_path / "pointed.keras"
    pointed.write_bytes(b"x")
    _point_at(runs, pointed)
    monkeypatch.setenv("FKS_MODEL", str(tmp_path / "override.keras"))
    assert active_model_path() == tmp_path / "override.keras"  # taken as given, even before it exists


@pytest.mark.parametrize("pointer", ["missing-file", "folder", "empty", "pointer-is-a-folder", "unreadable-bytes"])
def test_a_pointer_that_names_no_file_falls_back_to_the_shipped_model(runs, tmp_path, pointer):
    if pointer == "missing-file":
        _point_at(runs, tmp_path / "deleted-run" / "model.keras")
    elif pointer == "folder":
        _point_at(runs, tmp_path)
    elif pointer == "empty":
        (runs / POINTER_NAME).write_text("")
    elif pointer == "pointer-is-a-folder":
        (runs / POINTER_NAME).mkdir()
    else:
        (runs / POINTER_NAME).write_bytes(b"\xff\xfe\x00bad")
    assert active_model_path() == SHIPPED_MODEL


def test_an_empty_fks_model_is_ignored(runs, tmp_path, monkeypatch):
    model = tmp_path / "m.keras"
    model.write_bytes(b"x")
    _point_at(runs, model)
    monkeypatch.setenv("FKS_MODEL", "")
    assert active_model_path() == model
