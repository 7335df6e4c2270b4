"""Data shaped like Kaggle's (trainer.partial), the masked loss, and the pseudo-label stage as the pages see it."""
import json

import numpy as np
import pytest

from core.schema import KEYPOINT_NAMES
from tests.helpers import synthetic_faces
from trainer import events as ev
from trainer.data import KeypointData, read_kaggle_csv, write_kaggle_csv
from trainer.partial import KAGGLE_ALWAYS, kaggle_shaped, write_kaggle_shaped
from trainer.recipe import RecipeConfig, make_split, train

TINY = dict(widths=(4, 8, 8, 16, 16), learning_rates=(1e-3,), batch_sizes=(16,), epochs_per_stage=1,
            pseudo_stages=((1e-4, 16),), final_stages=((1e-5, 16),), test_size=0.2, val_fraction=0.2)
KEPT = [KEYPOINT_NAMES.index(n) for n in KAGGLE_ALWAYS]


@pytest.fixture
def complete_csv(tmp_path):
    return write_kaggle_csv(synthetic_faces(120, people=20), tmp_path / "complete.csv")


def test_kaggle_shape_blanks_training_rows_only_and_keeps_the_split(complete_csv, tmp_path):
    out = tmp_path / "kaggle.csv"
    report = write_kaggle_shaped(complete_csv, out, test_size=0.2, val_fraction=0.2, fraction=0.7, seed=3)
    before, after = read_kaggle_csv(complete_csv), read_kaggle_csv(out)
    config = RecipeConfig(test_size=0.2, val_fraction=0.2)
    split_before, split_after = make_split(before, config), make_split(after, config)
    for part in ("val", "test"):  # the same people, every row complete
        assert sorted(set(getattr(split_after, part).groups)) == sorted(set(getattr(split_before, part).groups))
        assert len(getattr(split_after, part)) == len(getattr(split_before, part))
    assert report.val_people == sorted(set(split_before.val.groups))
    held_out = np.isin(after.groups, report.val_people + report.test_people)
    assert after.complete[held_out].all()
    blanked = ~after.complete
    assert blanked.sum() == report.blanked_rows and 0.5 < report.blanked_rows / report.train_rows < 0.9
    # a blanked row keeps exactly the 4 points Kaggle's incomplete rows have, at their true places
    missing = np.isnan(after.keypoints[blanked]).any(axis=2)
    assert not missing[:, KEPT].any() and missing.sum(axis=1).tolist() == [11] * int(blanked.sum())
    np.testing.assert_allclose(after.keypoints[blanked][:, KEPT], before.keypoints[blanked][:, KEPT], atol=1e-3)
    assert len(split_after.train) + len(split_after.incomplete) == len(split_before.train)
    # seeded: the same rows again, other rows for another seed
    again = kaggle_shaped(before, np.flatnonzero(~held_out), 0.7, seed=3)[1]
    assert np.array_equal(again, np.flatnonzero(blanked))
    assert not np.array_equal(kaggle_shaped(before, np.flatnonzero(~held_out), 0.7, seed=4)[1], again)
    assert json.loads((tmp_path / "kaggle.csv.report.json").read_text())["blanked_rows"] == report.blanked_rows


def test_kaggle_shape_refuses_files_it_cannot_shape(tmp_path):
    no_people = write_kaggle_csv(synthetic_faces(20), tmp_path / "a.csv")
    with pytest.raises(ValueError, match="person"):
        write_kaggle_shaped(no_people, tmp_path / "out.csv")
    partial = write_kaggle_csv(synthetic_faces(20, people=5, incomplete_every=3), tmp_path / "b.csv")
    with pytest.raises(ValueError, match="incomplete"):
        write_kaggle_shaped(partial, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_the_cli_writes_it(complete_csv, tmp_path, capsys):
    from trainer.cli import main

    assert main(["kaggle-shape", str(complete_csv), "--out", str(tmp_path / "k.csv.gz"), "--test-size", "0.2"]) == 0
    assert "keep only left_eye_center" in capsys.readouterr().out
    assert (~read_kaggle_csv(tmp_path / "k.csv.gz").complete).sum() > 0


@pytest.mark.parametrize("kind", ["mse", "l1", "wing"])
def test_masked_loss_is_the_plain_loss_on_complete_rows_and_ignores_missing_points(kind):
    import keras

    from trainer.losses import make_loss

    rng = np.random.default_rng(0)
    y = rng.uniform(-1, 1, (6, 30)).astype("float32")
    p = (y + rng.normal(0, 0.05, y.shape)).astype("float32")
    plain = make_loss(kind)
    plain = keras.losses.get(plain) if isinstance(plain, str) else plain
    masked = make_loss(kind, masked=True)
    np.testing.assert_allclose(float(masked(y, p)), float(np.mean(plain(y, p))), rtol=1e-5)
    # rows with missing points: only the labelled values count, each as much as any other
    missing = y.copy()
    missing[2:, 8:] = np.nan
    labelled = ~np.isnan(missing)
    expected_per_value = masked.call(np.where(labelled, y, 0), p)  # per row, scaled by rows / labelled values
    assert np.isfinite(float(masked(missing, p)))
    wild = p.copy()
    wild[~labelled] += 50  # predictions at unlabelled points do not change the loss
    np.testing.assert_allclose(float(masked(missing, wild)), float(masked(missing, p)), rtol=1e-5)
    assert expected_per_value.shape == (6,)


def test_masked_loss_gradient_is_zero_at_missing_points():
    import tensorflow as tf

    from trainer.losses import make_loss

    y = np.random.default_rng(1).uniform(-1, 1, (4, 30)).astype("float32")
    y[1:, 8:] = np.nan
    p = tf.Variable(np.zeros((4, 30), np.float32))
    with tf.GradientTape() as tape:
        loss = make_loss("wing", masked=True)(y, p)
    grad = tape.gradient(loss, p).numpy()
    assert np.isfinite(grad).all() and not grad[1:, 8:].any() and grad[0].any()


def _partial_data(tmp_path):
    complete = write_kaggle_csv(synthetic_faces(60, people=12), tmp_path / "complete.csv")
    write_kaggle_shaped(complete, tmp_path / "partial.csv.gz", test_size=TINY["test_size"],
                        val_fraction=TINY["val_fraction"], fraction=0.6)
    return tmp_path / "partial.csv.gz"


def test_masked_training_uses_incomplete_rows_in_every_stage(tmp_path):
    data = _partial_data(tmp_path)
    config = RecipeConfig(data=str(data), masked_loss=True, pseudo_label=False, loss="wing", **TINY)
    card = train(config, tmp_path / "run")
    events = ev.read_events(tmp_path / "run" / "events.jsonl")
    start = next(e for e in events if e["event"] == ev.RUN_START)
    stage = next(e for e in events if e["event"] == ev.STAGE_START)
    assert start["incomplete_rows"] > 0 and start["masked_loss"] is True
    assert stage["rows"] == start["train_rows"] + start["incomplete_rows"]
    epoch = next(e for e in events if e["event"] == ev.EPOCH_END)
    assert np.isfinite(epoch["loss"]) and np.isfinite(epoch["rmse_px"])  # the progress metric is masked too
    assert card.config["masked_loss"] is True


def test_the_pseudo_label_stage_says_what_it_labelled_and_with_which_model(tmp_path):
    from trainer import runfolders

    data = _partial_data(tmp_path)
    train(RecipeConfig(data=str(data), **TINY), tmp_path / "run")
    events = ev.read_events(tmp_path / "run" / "events.jsonl")
    pseudo = next(e for e in events if e["event"] == ev.PSEUDO_LABELS)
    start = next(e for e in events if e["event"] == ev.RUN_START)
    assert pseudo["rows"] == start["incomplete_rows"] and pseudo["filled_values"] == pseudo["rows"] * 11 * 2
    assert pseudo["model"] == "the model after stage 1 (main lr=0.001 batch=16)"
    text = runfolders.pseudo_labels(tmp_path / "run")
    assert text.startswith(f"Pseudo-labelling: {pseudo['rows']} incomplete rows labelled") and "after stage 1" in text
    assert "now" not in text  # the run has finished
    with np.load(tmp_path / "run" / "pseudo_labels.npz") as z:
        assert z["filled"].shape == (pseudo["rows"], 15) and z["filled"].sum() == pseudo["rows"] * 11
        assert not z["filled"][:, KEPT].any() and np.isfinite(z["keypoints"]).all()


def test_pseudo_label_pictures_tell_drawn_points_from_real_ones(tmp_path):
    from pages.ui import pictures
    from trainer import explore

    path = _partial_data(tmp_path)
    data = read_kaggle_csv(path)
    train(RecipeConfig(data=str(path), **TINY), tmp_path / "run")
    drawn = explore.pseudo_labels(data, tmp_path / "run" / "pseudo_labels.npz")
    rows = np.array(sorted(drawn))
    assert len(rows) > 0 and not data.complete[rows].any()  # each maps back to an incomplete row of the file
    assert all(np.array_equal(np.isnan(data.keypoints[r]).any(axis=1), drawn[r][1]) for r in rows)
    assert all(np.allclose(drawn[r][0][~drawn[r][1]], data.keypoints[r][~drawn[r][1]], atol=1e-3) for r in rows)
    plain = pictures.face_picture(data.images[rows[0]], data.keypoints[rows[0]])
    marked = pictures.face_picture(data.images[rows[0]], data.keypoints[rows[0]], pseudo=drawn[rows[0]])
    assert plain.shape == marked.shape and (plain != marked).any()
    other = KeypointData(data.images[:3] // 2, data.keypoints[:3])  # another file: nothing matches
    assert explore.pseudo_labels(other, tmp_path / "run" / "pseudo_labels.npz") == {}
    assert explore.runs_with_pseudo_labels(tmp_path) == ["run"]


def test_the_pages_show_the_pseudo_label_stage_and_the_drawn_points(tmp_path, monkeypatch, app_model_path):
    """Training: what the pseudo-label stage labelled with which model, and the precision; Dataset: the
    run's pseudo-labelled rows, their drawn points apart from the real ones."""
    import shutil

    from streamlit.testing.v1 import AppTest

    from core.paths import DEFAULT_DATASET_NAME
    from tests.conftest import REPO

    runs, data_dir = tmp_path / "runs", tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv("FKS_RUNS_DIR", str(runs))
    monkeypatch.setenv("FKS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("FKS_MODEL", str(app_model_path))
    partial = shutil.copy(_partial_data(tmp_path), data_dir / DEFAULT_DATASET_NAME)
    train(RecipeConfig(data=str(partial), **TINY), runs / "labelled")

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    at.switch_page("pages/training.py").run()
    assert not at.exception, [e.value for e in at.exception]
    infos = [i.value for i in at.info]
    assert any(i.startswith("Pseudo-labelling:") and "rows labelled" in i and "after stage 1" in i
               for i in infos), infos
    assert any(c.value.startswith("Compute precision: ") for c in at.caption)

    at.switch_page("pages/dataset.py").run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="pseudo-run").set_value("labelled").run()
    show = next(s for s in at.selectbox if s.label == "Show")
    assert show.options[0] == "pseudo-labelled"
    show.set_value("pseudo-labelled").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("pseudo-labelled by run 'labelled'" in c.value for c in at.caption), [c.value for c in at.caption]
