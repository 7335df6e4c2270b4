"""Hostile files and states (issue 22): each is refused or listed with a message, and nothing already
saved is lost. Concurrency is tested in test_concurrency; the host allow-list in test_safe_server."""
from __future__ import annotations

import gzip
import zipfile

import numpy as np
import pytest

from core.schema import COORD_COLUMNS, IMAGE_COLUMN
from tests.helpers import synthetic_faces, write_synthetic_csv
from trainer import data as data_module
from trainer.data import DatasetError, read_kaggle_csv, write_kaggle_csv

HEADER = ",".join([*COORD_COLUMNS, IMAGE_COLUMN])


def _row(pixels: str) -> str:
    return ",".join(["40"] * len(COORD_COLUMNS)) + "," + pixels


# ---------------------------------------------------------------- item 2: memory bombs in training files

def test_a_long_pixel_line_is_refused_before_it_is_split(tmp_path):
    path = tmp_path / "line.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write(HEADER + "\n" + _row("1 " * 5_000_000) + "\n")
    assert path.stat().st_size < 100_000
    with pytest.raises(DatasetError, match="A line of the file is longer than 128 KB"):
        read_kaggle_csv(path)


def test_rows_beyond_the_limit_are_refused_and_the_limit_is_stated(tmp_path, monkeypatch):
    path = write_synthetic_csv(tmp_path / "faces.csv.gz", n=30)
    monkeypatch.setattr(data_module, "CHUNK_ROWS", 8)  # the limit holds across chunks
    monkeypatch.setenv("FKS_DATASET_MAX_ROWS", "29")
    with pytest.raises(DatasetError, match=r"more than 29 rows, the most this app reads \(FKS_DATASET_MAX_ROWS"):
        read_kaggle_csv(path)
    monkeypatch.setenv("FKS_DATASET_MAX_ROWS", "30")
    assert len(read_kaggle_csv(path)) == 30
    monkeypatch.delenv("FKS_DATASET_MAX_ROWS")
    assert data_module.max_rows() == 50_000


def test_chunked_reading_keeps_every_row_label_person_and_frame(tmp_path, monkeypatch):
    faces = synthetic_faces(23, incomplete_every=3, people=4)
    faces.frames = np.array([f"f{i}" for i in range(23)])
    path = write_kaggle_csv(faces, tmp_path / "faces.csv.gz")
    monkeypatch.setattr(data_module, "CHUNK_ROWS", 5)
    back = read_kaggle_csv(path)
    assert np.array_equal(back.images, faces.images)
    np.testing.assert_allclose(back.keypoints, faces.keypoints, atol=1e-3)
    assert list(back.groups) == list(faces.groups) and list(back.frames) == list(faces.frames)
    bad = synthetic_faces(12)
    bad.keypoints[10, 3, 0] = 1e9  # row 11, in the third chunk of 5
    with pytest.raises(DatasetError, match=r"Row 11, column 'left_eye_outer_corner_x': 1e\+09 is not"):
        read_kaggle_csv(write_kaggle_csv(bad, tmp_path / "bad.csv"))


# ---------------------------------------------------------------- item 9: silent pixel casts, two CSVs in a zip

@pytest.mark.parametrize("value, message", [("nan", "pixel 6 is nan"), ("1.7", "pixel 6 is 1.7"),
                                            ("inf", "pixel 6 is inf")])
def test_pixels_that_are_not_whole_numbers_are_refused(tmp_path, value, message):
    pixels = ["10"] * 9216
    pixels[5] = value
    path = tmp_path / "faces.csv"
    path.write_text(HEADER + "\n" + _row("10 " * 9216) + "\n" + _row(" ".join(pixels)) + "\n")
    with pytest.raises(DatasetError, match=f"Row 2, column 'Image': {message}; pixel values are whole numbers"):
        read_kaggle_csv(path)
    pixels[5] = "12.0"  # a whole number written as a float is still a pixel
    path.write_text(HEADER + "\n" + _row(" ".join(pixels)) + "\n")
    assert read_kaggle_csv(path).images[0].reshape(-1)[5] == 12


def test_a_zip_with_two_csv_files_names_them_instead_of_reading_the_first(tmp_path):
    one = write_synthetic_csv(tmp_path / "a.csv", n=3).read_bytes()
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as archive:
        archive.writestr("train.csv", one)
        archive.writestr("more/extra.csv", one)
    with pytest.raises(DatasetError, match=r"holds 2 \.csv files \(train\.csv, more/extra\.csv\)"):
        read_kaggle_csv(tmp_path / "two.zip")
    with zipfile.ZipFile(tmp_path / "one.zip", "w") as archive:
        archive.writestr("train.csv", one)
        archive.writestr("__MACOSX/._train.csv", b"\0")
    assert len(read_kaggle_csv(tmp_path / "one.zip")) == 3
