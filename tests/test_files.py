"""Atomic writes: the target is the old file or the new one, never half of one, and no temp file is left."""
import json

import numpy as np
import pandas as pd
import pytest

from core.files import atomic_path, write_json_atomic, write_text_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = write_text_atomic(tmp_path / "state.json", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_the_temp_name_keeps_the_suffix_that_libraries_read(tmp_path):
    target = tmp_path / "data.csv.gz"
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".gz" and tmp.parent == tmp_path and tmp.name.startswith(".")
        pd.DataFrame({"a": [1, 2]}).to_csv(tmp, index=False)  # pandas picks gzip from the suffix
    assert pd.read_csv(target)["a"].tolist() == [1, 2]
    with atomic_path(tmp_path / "faces.npz") as tmp:
        np.savez(tmp, x=np.arange(3))  # savez would append .npz to a name without it
    assert np.load(tmp_path / "faces.npz")["x"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv.gz", "faces.npz"]


def test_json_takes_numpy_values(tmp_path):
    path = write_json_atomic(tmp_path / "card.json", {"n": np.int64(3), "xy": np.array([1.5, 2.0])})
    assert json.loads(path.read_text()) == {"n": 3, "xy": [1.5, 2.0]}
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "bad.json", {"x": object()})
    assert not (tmp_path / "bad.json").exists()
