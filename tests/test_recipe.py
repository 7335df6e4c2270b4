"""The recipe end to end on a few dozen synthetic rows: every stage, events in order, resume."""
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from core.card import read_card
from core.model import KeypointPredictor, file_sha256
from tests.helpers import write_synthetic_csv
from trainer import events as ev
from trainer.config import RecipeConfig
from trainer.export import load_keras_model
from trainer.recipe import Cancelled, train

TINY = dict(widths=(4, 8, 8, 16, 16), learning_rates=(1e-3, 1e-4), batch_sizes=(16,), epochs_per_stage=1,
            pseudo_stages=((1e-4, 16),), final_stages=((1e-5, 16),), test_size=8, val_fraction=0.2)


@pytest.fixture
def tiny_csv(tmp_path):
    return write_synthetic_csv(tmp_path / "tiny.csv", n=48, incomplete_every=4, people=12)


def test_every_stage_runs_and_yields_a_loadable_model_with_ordered_events(tiny_csv, tmp_path):
    config = RecipeConfig(data=str(tiny_csv), **TINY)
    card = train(config, tmp_path / "run")
    run = tmp_path / "run"
    model = load_keras_model(run / "model.keras")
    assert model.output_shape == (None, 30)
    assert KeypointPredictor(run / "model.keras").predict_crops(np.zeros((2, 96, 96), np.uint8)).shape == (2, 15, 2)
    names = [e["event"] for e in ev.read_events(run / "events.jsonl") if e["event"] != ev.BATCH_PROGRESS]
    assert names == [ev.RUN_START,
                     ev.STAGE_START, ev.EPOCH_END, ev.STAGE_END,  # main lr 1e-3
                     ev.STAGE_START, ev.EPOCH_END, ev.STAGE_END,  # main lr 1e-4
                     ev.PSEUDO_LABELS,
                     ev.STAGE_START, ev.EPOCH_END, ev.STAGE_END,  # pseudo
                     ev.STAGE_START, ev.EPOCH_END, ev.STAGE_END,  # final
                     ev.RUN_END]
    events = ev.read_events(run / "events.jsonl")
    pseudo = next(e for e in events if e["event"] == ev.PSEUDO_LABELS)
    assert pseudo["rows"] > 0 and pseudo["filled_values"] == pseudo["rows"] * 5 * 2
    pseudo_stage = next(e for e in events if e["event"] == ev.STAGE_START and e["phase"] == "pseudo")
    final_stage = next(e for e in events if e["event"] == ev.STAGE_START and e["phase"] == "final")
    assert pseudo_stage["rows"] == final_stage["rows"] + pseudo["rows"]
    assert card.data.split == "by person" and card.data.test_rows >= 8
    from trainer.data import read_kaggle_csv

    groups = read_kaggle_csv(tiny_csv).groups
    test_people = card.data.test_people
    complete_rows_of_test_people = sum(1 for g, c in zip(groups, read_kaggle_csv(tiny_csv).complete) if c and g in test_people)
    assert complete_rows_of_test_people == card.data.test_rows  # whole people held out
    assert 0 < card.metrics.test_rmse_px < 100
    assert json.loads((run / "model.json").read_text())["metrics"] == card.metrics.to_dict()
    assert card.architecture.head == config.head  # the card says which head, beside the widths
    assert json.loads((run / "config.json").read_text())["widths"] == list(TINY["widths"])


def test_pseudo_labels_fill_only_missing_values():
    from tests.helpers import synthetic_faces
    from trainer.architecture import build_model
    from trainer.recipe import fill_pseudo_labels

    data = synthetic_faces(8, incomplete_every=2)
    incomplete = data.subset(np.flatnonzero(~data.complete))
    filled, count = fill_pseudo_labels(build_model((4, 4, 4, 4, 4)), incomplete)
    known = ~np.isnan(incomplete.keypoints)
    assert count == (~known).sum() and not np.isnan(filled.keypoints).any()
    assert (filled.keypoints[known] == incomplete.keypoints[known]).all()


def test_resume_after_interruption_continues_where_it_stopped(tiny_csv, tmp_path):
    config = RecipeConfig(data=str(tiny_csv), **{**TINY, "epochs_per_stage": 2})
    run = tmp_path / "run"
    cancel = threading.Event()
    epochs_seen = []

    def stop_after_three_epochs(e):
        if isinstance(e, ev.EpochEnd):
            epochs_seen.append((e.stage, e.epoch))
            if len(epochs_seen) == 3:
                cancel.set()

    with pytest.raises(Cancelled):
        train(config, run, ev.EventBus([stop_after_three_epochs]), cancel_event=cancel)
    assert not (run / "model.keras").exists()  # a cancelled run writes no model
    state = json.loads((run / "state.json").read_text())
    assert (state["stage"], state["epoch"]) == (1, 1)
    train(config, run)
    events = ev.read_events(run / "events.jsonl")
    done = [(e["stage"], e["epoch"]) for e in events if e["event"] == ev.EPOCH_END]
    assert done == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1)]  # nothing repeated
    starts = [e for e in events if e["event"] == ev.RUN_START]
    assert starts[1]["resumed_from"]["stage"] == 1
    assert (run / "model.keras").is_file()


MIRRORED = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import sys
from trainer.recipe import train
from trainer.config import RecipeConfig
config = RecipeConfig(data=sys.argv[1], strategy="mirrored", widths=(4, 8, 8, 16, 16), learning_rates=(1e-3,),
                      batch_sizes=(16,), epochs_per_stage=1, pseudo_label=False, test_size=8, val_fraction=0.2)
train(config, sys.argv[2])
"""


def test_mirrored_strategy_on_two_logical_cpus(tiny_csv, tmp_path):
    """What train() itself used, as its card and its event log record it: both logical CPUs, in sync."""
    from tests.conftest import REPO

    out = subprocess.run([sys.executable, "-c", MIRRORED, str(tiny_csv), str(tmp_path / "run")], cwd=REPO,
                         capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-3000:]
    distribution = read_card(tmp_path / "run" / "model.keras").distribution
    assert distribution["strategy"] == "mirrored" and distribution["replicas_in_sync"] == 2
    starts = [e for e in ev.read_events(tmp_path / "run" / "events.jsonl") if e["event"] == ev.RUN_START]
    assert [e["replicas_in_sync"] for e in starts] == [2]


def test_config_for_merges_preset_fields_and_augmentation():
    from trainer.config import config_for

    c = config_for("quick", {"max_rotation_deg": 5}, data="x.csv", epochs_per_stage=None, test_size=8)
    assert c.widths == (8, 16, 32, 64, 128) and c.epochs_per_stage == 1  # preset kept where None
    assert c.data == "x.csv" and c.test_size == 8
    assert c.augment.max_rotation_deg == 5 and c.augment.flip_probability == 0.5
    assert config_for("full").learning_rates == (1e-3, 1e-4, 1e-5)


def test_jitter_copies_follow_their_frame_into_training_only():
    from tests.helpers import synthetic_faces
    from trainer.data import KeypointData
    from trainer.recipe import make_split

    faces = synthetic_faces(40, people=10)
    faces.frames = np.array([f"{g}_{i:02d}.jpg" for i, g in enumerate(faces.groups)])
    copies = synthetic_faces(40, seed=1, people=10)
    copies.frames = np.array([f + "#jitter1" for f in faces.frames])
    split = make_split(KeypointData.concat([faces, copies]), RecipeConfig(test_size=8, val_fraction=0.2))
    plain = make_split(faces, RecipeConfig(test_size=8, val_fraction=0.2))
    assert not split.val.is_copy.any() and not split.test.is_copy.any()
    assert list(split.test.frames) == list(plain.test.frames)  # copies change nothing about who is held out
    assert list(split.val.frames) == list(plain.val.frames)
    train_copies = split.train.frames[split.train.is_copy]
    assert sorted(f.split("#")[0] for f in train_copies) == sorted(plain.train.frames)


def test_fine_tuning_starts_from_the_parent_weights_and_refuses_a_leaky_split(tiny_csv, tmp_path):
    from trainer.architecture import build_model
    from trainer.cards import check_parent
    from trainer.data import read_kaggle_csv, write_kaggle_csv
    from trainer.recipe import make_split, start_from_weights

    parent = RecipeConfig(data=str(tiny_csv), **{**TINY, "pseudo_label": False})
    train(parent, tmp_path / "parent")
    parent_path = tmp_path / "parent" / "model.keras"
    parent_card = json.loads((tmp_path / "parent" / "model.json").read_text())
    child = build_model(TINY["widths"])
    start_from_weights(child, parent_path)
    for mine, theirs in zip(child.get_weights(), load_keras_model(parent_path).get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(ValueError, match="architecture"):
        start_from_weights(build_model((4, 4, 4, 4, 4)), parent_path)

    def check(data_path, **fields):
        config = RecipeConfig(data=str(data_path), init_from=str(parent_path), **{**TINY, **fields})
        check_parent(config, make_split(read_kaggle_csv(data_path), config))

    def rewrite_card(**data_fields):
        card = json.loads(json.dumps(parent_card))
        card["data"].update(data_fields)
        (tmp_path / "parent" / "model.json").write_text(json.dumps(card))

    check(tiny_csv)  # the parent's own split: it never saw these held-out people
    with pytest.raises(ValueError, match="same architecture"):
        check(tiny_csv, widths=(4, 4, 4, 4, 4))
    with pytest.raises(ValueError, match="same architecture"):
        check(tiny_csv, aux68=1.0)  # a second head the parent has no weights for
    with pytest.raises(ValueError, match=r"trained on \d+ of the people this run holds out") as refused:
        check(tiny_csv, seed=7)  # another draw of held-out people: some of them trained the parent
    assert str(tmp_path) not in str(refused.value)  # the page shows it: a file name, no server path
    with pytest.raises(ValueError, match="holds out"):  # the trainer itself refuses, before a step
        train(RecipeConfig(data=str(tiny_csv), init_from=str(parent_path), **{**TINY, "seed": 7}), tmp_path / "leaky")
    assert not (tmp_path / "leaky" / "checkpoint.keras").exists()
    strangers = read_kaggle_csv(tiny_csv)
    strangers.groups = np.array([f"stranger-{g}" for g in strangers.groups])
    check(write_kaggle_csv(strangers, tmp_path / "strangers.csv"), seed=7)  # people the parent never saw
    # everyone not held out counts as trained on (incomplete rows train too), validation people count as held out
    assert parent_card["data"]["train_people"] == sorted(
        set(read_kaggle_csv(tiny_csv).groups) - set(parent_card["data"]["val_people"] + parent_card["data"]["test_people"]))
    rewrite_card(train_people=parent_card["data"]["train_people"] + parent_card["data"]["val_people"][:1])
    with pytest.raises(ValueError, match="trained on 1 of the people"):
        check(tiny_csv)

    rewrite_card(train_people=None)  # a card older than the field: the same held-out people are required
    check(tiny_csv)
    with pytest.raises(ValueError, match="tested on other people"):
        check(tiny_csv, seed=7)
    rewrite_card(train_people=None, val_people=parent_card["data"]["val_people"][1:])
    with pytest.raises(ValueError, match="validated on other people"):
        check(tiny_csv)
    (tmp_path / "parent" / "model.json").unlink()
    with pytest.raises(ValueError, match="has no card"):
        check(tiny_csv)
    (tmp_path / "parent" / "model.json").write_text(json.dumps(parent_card))

    card = train(RecipeConfig(data=str(tiny_csv), init_from=str(parent_path), **{**TINY, "pseudo_label": False}),
                 tmp_path / "child")
    assert card.config["init_from"] == str(parent_path)
    assert card.data.test_people == parent_card["data"]["test_people"]


def test_the_default_preset_adapts_the_active_model_in_its_own_architecture(tiny_csv, tmp_path, monkeypatch):
    from trainer.config import config_for
    from trainer.presets import DEFAULT_PRESET

    parent = RecipeConfig(data=str(tiny_csv), head="softargmax", **{**TINY, "pseudo_label": False})
    train(parent, tmp_path / "parent")
    monkeypatch.setenv("FKS_MODEL", str(tmp_path / "parent" / "model.keras"))  # what the app uses
    config = config_for(DEFAULT_PRESET, data=str(tiny_csv), test_size=8, val_fraction=0.2)
    assert config.init_from == str(tmp_path / "parent" / "model.keras")
    assert (config.widths, config.head) == (TINY["widths"], "softargmax")  # the card's, not the recipe's
    assert config.masked_loss and not config.pseudo_label  # incomplete rows teach their own points, no extra stages
    card = train(config, tmp_path / "adapted")
    assert card.parent["sha256"] == file_sha256(tmp_path / "parent" / "model.keras")
    kernels = lambda path: [w for w in load_keras_model(path).get_weights() if w.ndim == 4]  # noqa: E731
    moved = [np.abs(a - b).max() for a, b in zip(kernels(tmp_path / "adapted" / "model.keras"),
                                                 kernels(tmp_path / "parent" / "model.keras"))]
    assert 0 < max(moved) < 0.01  # it trained, from the parent's weights (a random start is ~0.1 or more away)
