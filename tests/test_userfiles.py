"""Upload names a browser sends: sanitised into one safe file name inside the uploads folder, content-addressed."""
import hashlib
import os
import re
import time

import pytest

from core.userfiles import MAX_NAME_CHARS, save_upload, stored_name, uploads_dir

DIGEST = "0123456789abcdef" * 4
SAFE = re.compile(r"^[0-9a-f]{12}-[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@pytest.mark.parametrize("sent, kept", [
    ("faces.csv", "faces.csv"),
    ("my faces (1).CSV.GZ", "my_faces__1_.csv.gz"),  # a known extension in lower case: read by its name
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\me\\faces.zip", "C__Users_me_faces.zip"),
    (".bashrc", "bashrc"),
    ("..", "upload"),
    ("", "upload"),
    ("Ünïcödé ファイル.csv", "_n_c_d______.csv"),
    ("a\x00b\nc.csv", "a_b_c.csv"),
])
def test_a_sent_name_becomes_one_safe_file_name(sent, kept):
    name = stored_name(sent, DIGEST)
    assert name == f"{DIGEST[:12]}-{kept}"
    assert SAFE.match(name) and "/" not in name and ".." not in name


@pytest.mark.parametrize("suffix", [".csv.gz", ".zip", ".csv", ".jpeg"])
def test_a_long_name_is_cut_in_its_stem_keeping_the_extension(suffix):
    name = stored_name("x" * 300 + suffix, DIGEST)
    assert len(name) == MAX_NAME_CHARS and name.endswith("x" + suffix)


def test_uploads_default_to_the_data_folder_and_a_repeat_upload_is_the_same_file_made_newest(tmp_path, monkeypatch):
    monkeypatch.setenv("FKS_DATA_DIR", str(tmp_path / "data"))
    content = b"left_eye_center_x\n1\n"
    path = save_upload(content, "faces.csv")
    assert path.parent == uploads_dir() == tmp_path / "data" / "uploads"
    assert path.name == stored_name("faces.csv", hashlib.sha256(content).hexdigest())
    old = time.time() - 3600
    os.utime(path, (old, old))
    assert save_upload(content, "faces.csv") == path and path.stat().st_mtime > old + 3000  # kept longest by pruning
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
