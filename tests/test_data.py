import gzip
import io
import zipfile

import numpy as np
import pandas as pd
import pytest

from core.schema import COORD_COLUMNS
from tests.helpers import synthetic_faces, write_synthetic_csv
from trainer.data import DatasetError, read_kaggle_csv, split_indices, write_kaggle_csv


def test_round_trip_csv_gz_and_zip(tmp_path):
    data = synthetic_faces(12, incomplete_every=3, people=4)
    path = write_kaggle_csv(data, tmp_path / "t.csv")
    back = read_kaggle_csv(path)
    assert (back.images == data.images).all()
    np.testing.assert_allclose(back.keypoints, data.keypoints, atol=1e-3)
    assert back.complete.sum() == data.complete.sum() == 8
    assert list(back.groups) == list(data.groups)
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert len(read_kaggle_csv(gz)) == 12
    zpath = tmp_path / "t.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.write(path, "training.csv")
    assert len(read_kaggle_csv(zpath)) == 12
    assert len(read_kaggle_csv(zpath.read_bytes(), name="upload.zip")) == 12


def _table(tmp_path):
    return pd.read_csv(write_synthetic_csv(tmp_path / "ok.csv", n=5))


def _write(table, tmp_path):
    p = tmp_path / "bad.csv"
    table.to_csv(p, index=False)
    return p


def test_missing_column_is_named(tmp_path):
    t = _table(tmp_path).drop(columns=["nose_tip_y"])
    with pytest.raises(DatasetError, match="nose_tip_y"):
        read_kaggle_csv(_write(t, tmp_path))


def test_wrong_pixel_count_names_row_and_column(tmp_path):
    t = _table(tmp_path)
    t.loc[2, "Image"] = "1 2 3"
    with pytest.raises(DatasetError, match=r"Row 3, column 'Image': 3 pixels, expected 9216"):
        read_kaggle_csv(_write(t, tmp_path))


def test_pixel_out_of_range_names_row(tmp_path):
    t = _table(tmp_path)
    t.loc[1, "Image"] = " ".join(["300"] * 9216)
    with pytest.raises(DatasetError, match=r"Row 2, column 'Image'.*0-255"):
        read_kaggle_csv(_write(t, tmp_path))


def test_unparsable_number_names_row_and_column(tmp_path):
    t = _table(tmp_path).astype({"mouth_left_corner_x": object})
    t.loc[4, "mouth_left_corner_x"] = "abc"
    with pytest.raises(DatasetError, match=r"Row 5, column 'mouth_left_corner_x': 'abc'"):
        read_kaggle_csv(_write(t, tmp_path))


def test_not_a_csv_and_empty_files(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"")
    with pytest.raises(DatasetError):
        read_kaggle_csv(p)
    p.write_text(",".join(COORD_COLUMNS) + ",Image\n")
    with pytest.raises(DatasetError, match="no rows"):
        read_kaggle_csv(p)
    with pytest.raises(DatasetError, match="corrupt"):
        read_kaggle_csv(io.BytesIO(b"PK not really"), name="a.zip")


def test_split_is_seeded_and_keeps_groups_together():
    groups = np.repeat([f"p{i}" for i in range(30)], 10)
    train, test = split_indices(len(groups), 0.1, seed=3, groups=groups)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 300
    assert not set(groups[train]) & set(groups[test])
    assert len(test) == 30
    again = split_indices(len(groups), 0.1, seed=3, groups=groups)
    assert (again[1] == test).all()
    train, test = split_indices(1000, 500, seed=0)
    assert len(test) == 500 and len(train) == 500
