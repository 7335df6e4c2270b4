"""Promote a finished run to the shipped model (models/keypoints.keras + .onnx + .json card).

The card gains what a reader needs to trust the numbers: the end-to-end evaluation of each
inference option (plain, flip-averaged, flip-averaged + re-centring) on the held-out test people,
the option the app will use, and the commands that reproduce it all. Every choice (which option,
the re-centring threshold) is made on the validation people, never on the test people.

With `locator_run`, that run's model is shipped beside the keypoint model as the locator of
core.pipeline.Recentring (a model fine-tuned on jittered crops finds a face the detector framed
badly; the keypoint model then reads the re-centred crop).
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

from core.model import card_path_for, file_sha256, inference_copy, load_keras_model, save_model, validate_model
from core.paths import SHIPPED_MODEL, runs_dir
from core.pipeline import Recentring
from core.registry import safe_run_dir
from trainer.runs import write_json_atomic

LOCATOR_NAME = "keypoints-locator.keras"
#: Re-centring thresholds tried on the validation people, as multiples of the card's train_offset_p99_px.
GATE_FACTORS = (1.0, 1.25, 1.5, 2.0)


def held_out_people(card: dict) -> tuple[list[str], list[str], float]:
    """(validation people, test people, train_offset_p99_px) of a run's card; older cards lack the first
    and the last: they are re-derived from the card's data and config."""
    data = card.get("data", {})
    if data.get("val_people") is not None and card.get("train_offset_p99_px") is not None:
        return data["val_people"], data["test_people"], card["train_offset_p99_px"]
    from trainer.data import read_kaggle_csv
    from trainer.recipe import RecipeConfig, make_split
    from trainer.runs import face_offset_p99

    config = RecipeConfig.from_dict(card["config"])
    split = make_split(read_kaggle_csv(config.data), config)
    if sorted(set(split.test.groups)) != sorted(data["test_people"]):
        raise ValueError(f"{config.data} no longer gives the card's split (its test people differ).")
    return sorted(set(split.val.groups)), data["test_people"], face_offset_p99(split.train)


def model_of(run_or_file: str) -> Path:
    """A run's model.keras, or a .keras file (with its JSON card beside it), e.g. an earlier shipped model."""
    if run_or_file.endswith(".keras"):
        if not card_path_for(run_or_file).is_file():
            raise ValueError(f"{run_or_file} has no card ({card_path_for(run_or_file).name}) beside it.")
        return Path(run_or_file)
    return safe_run_dir(run_or_file, runs_dir()) / "model.keras"


def ship(run_name: str, frames: str | None = None, target: Path = SHIPPED_MODEL, locator_run: str | None = None) -> dict:
    """Copy a run's model (or a .keras file with its card) to `target`, measured on `frames` when given."""
    model_path = model_of(run_name)
    validate_model(model_path)  # a model with broken output is never shipped
    card = json.loads(card_path_for(model_path).read_text())
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model.keras"
        save_model(inference_copy(load_keras_model(model_path)), staged)
        card["model"] = target.name
        card["shipped_from_run"] = card.get("shipped_from_run") if run_name.endswith(".keras") else run_name
        import_report = Path(card["data"]["source"] + ".report.json")
        if import_report.is_file():  # how many frames the detector found when the data was imported
            report = json.loads(import_report.read_text())
            card["data"]["import"] = {k: report.get(k) for k in ("frames", "imported", "detection_rate", "people",
                                                                 "rows", "jitter", "command")}
        card.pop("locator", None)
        if locator_run:
            card["locator"] = _stage_locator(locator_run, card, staged.with_name(LOCATOR_NAME))
        elif ((card.get("inference") or {}).get("recentre") or {}).get("locator"):
            card["inference"]["recentre"] = None  # its locator is not shipped this time
        if frames and card.get("data", {}).get("test_people"):
            card.update(_measure_inference_options(staged, card, frames, locator_run is not None))
        card["reproduce"] = _reproduce(card, run_name, locator_run, target)
        write_json_atomic(card_path_for(staged), card)
        _install(staged, target, with_locator=locator_run is not None)
    return card


def _stage_locator(locator_run: str, card: dict, staged: Path) -> dict:
    """Save the locator run's model at `staged` and describe it for the card; it must share the test people."""
    locator_path = model_of(locator_run)
    locator_card = json.loads(card_path_for(locator_path).read_text())
    if sorted(locator_card["data"].get("test_people") or []) != sorted(card["data"].get("test_people") or []):
        raise ValueError(f"run {locator_run} was tested on other people than the model; it cannot be its locator.")
    validate_model(locator_path)
    save_model(inference_copy(load_keras_model(locator_path)), staged)
    import_report = Path(locator_card["data"]["source"] + ".report.json")
    return {"run": locator_run, "file": LOCATOR_NAME, "command": locator_card.get("command"),
            "import_command": json.loads(import_report.read_text()).get("command") if import_report.is_file() else None,
            "data": {k: locator_card["data"].get(k) for k in ("source", "rows", "train_rows", "train_jitter_copies")},
            "parent": locator_card.get("parent"), "wall_s": locator_card.get("wall_s"), "sha256": file_sha256(staged)}


def _install(staged: Path, target: Path, with_locator: bool) -> None:
    """Move the staged files into place one by one (temp name + rename); a locator not shipped is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    located, target_locator = staged.with_name(LOCATOR_NAME), target.with_name(LOCATOR_NAME)
    pairs = [(staged.with_suffix(s), target.with_suffix(s)) for s in (".onnx", ".json", ".keras")]  # .keras last
    if with_locator:
        pairs = [(located.with_suffix(".onnx"), target_locator.with_suffix(".onnx")), (located, target_locator)] + pairs
    for source, final in pairs:
        shutil.copy2(source, final.with_name(final.name + ".tmp"))
        final.with_name(final.name + ".tmp").replace(final)
    if not with_locator:
        target_locator.unlink(missing_ok=True)
        target_locator.with_suffix(".onnx").unlink(missing_ok=True)


def _measure_inference_options(staged: Path, card: dict, frames: str, has_locator: bool) -> dict:
    """Choose flip averaging and the re-centring threshold on the validation people; report on the test people.

    Thresholds tried are multiples (GATE_FACTORS) of how far the detector puts the 99th-percentile
    training face off the mean position. Ties in validation NME go to the option listed first: no
    re-centring, then the larger threshold (fewer faces moved).
    """
    from trainer.evaluate import evaluate_frames

    val_people, test_people, offset_p99 = held_out_people(card)
    card["data"]["val_people"], card["train_offset_p99_px"] = val_people, offset_p99
    write_json_atomic(card_path_for(staged), card)  # evaluate reads the mean shape from the card
    locator = LOCATOR_NAME if has_locator else ""
    options = [dict(flip_average=False, recentre=False), dict(flip_average=True, recentre=False)] + [
        dict(flip_average=True, recentre=Recentring(locator, min_offset_px=round(f * offset_p99, 2)))
        for f in sorted(GATE_FACTORS, reverse=True)]
    val = [evaluate_frames(staged, frames, val_people, **o) for o in options]
    chosen = min(range(len(options)), key=lambda i: val[i].get("nme", float("inf")))
    reported = sorted({0, 1, chosen})
    test = {i: evaluate_frames(staged, frames, test_people, **options[i]) for i in reported}
    recentre = options[chosen]["recentre"]
    return {
        "inference": {"flip_average": options[chosen]["flip_average"],
                      "recentre": dataclasses.asdict(recentre) if recentre else None,
                      "chosen_on": "validation people"},
        "evaluations": [{"people": "validation", **r} for r in val] + [{"people": "test", **test[i]} for i in reported],
        "metrics": {**card["metrics"], "end_to_end": test[chosen]},
    }


def _reproduce(card: dict, run_name: str, locator_run: str | None, target: Path) -> list[str]:
    frames = "../shared/data/youtube-faces-68/training.zip"
    steps = [card["data"].get("import", {}).get("command")
             or f"python -m trainer import-68 {frames} --out data/youtube68.csv.gz"]
    locator = card.get("locator") or {}
    if locator.get("import_command"):
        steps.append(locator["import_command"])
    parent = card.get("parent") or locator.get("parent")
    if parent:
        steps.append(f"# fine-tuning starts from {parent['path']} (sha256 {parent['sha256'][:12]}, run {parent.get('run')}), "
                     f"an earlier shipped model (git history of models/), trained by: {parent.get('command')}")
    steps.append(card.get("command") or f"python -m trainer train --run {run_name} (see config)")
    if locator_run:
        steps.append(card["locator"].get("command") or f"python -m trainer train --run {locator_run} (see its config)")
    steps.append(f"python -m trainer ship {run_name} --frames {frames}" + (f" --locator {locator_run}" if locator_run else ""))
    steps.append(f"python -m trainer evaluate --model {target.relative_to(target.parent.parent)} --frames {frames}")
    return steps
