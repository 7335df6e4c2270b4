"""Promote a finished run to the shipped model (models/keypoints.keras + .onnx + .json card).

The card gains what a reader needs to trust the numbers: the end-to-end evaluation of each
inference option (plain, flip-averaged, flip-averaged + re-centring) on the held-out test people,
the option the app will use, and the commands that reproduce it all. Every choice (which option,
the re-centring threshold) is made on the validation people, never on the test people.

With `locator_run`, that run's model is shipped beside the keypoint model as the locator of
core.pipeline.Recentring (a model fine-tuned on jittered crops finds a face the detector framed
badly; the keypoint model then reads the re-centred crop), unless the validation people show that
re-centring does not pay for this model: then it is measured, recorded in the card, and left out.

With frames, ship also makes the int8 twin (calibrated on training faces) and measures it on the
validation people; the webcam runs it when it keeps the float twin's NME there (INT8_NME_TOLERANCE).
"""
from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.card import EndToEnd, Evaluation, Inference, Int8Verdict, LocatorInfo, ModelCard, card_path_for
from core.files import atomic_path
from core.model import file_sha256, int8_path_for, onnx_path_for
from core.paths import SHARED_68_DATASET_ARG, SHIPPED_MODEL, runs_dir
from core.pipeline import Recentring
from core.registry import safe_run_dir
from trainer.architecture import inference_copy
from trainer.cards import face_offset_p99
from trainer.config import RecipeConfig
from trainer.data import read_kaggle_csv
from trainer.evaluate import evaluate_frames
from trainer.export import load_keras_model, quantize_onnx, save_model, validate_keras_model
from trainer.recipe import make_split

LOCATOR_NAME = "keypoints-locator.keras"
#: Re-centring thresholds tried on the validation people, as multiples of the card's train_offset_p99_px.
GATE_FACTORS = (1.0, 1.25, 1.5, 2.0)
#: The int8 twin runs live only if its validation NME is at most this much (relative) above the float twin's.
INT8_NME_TOLERANCE = 0.01
#: Training faces that calibrate the int8 twin's activation ranges.
CALIBRATION_FACES = 200


def held_out_people(card: ModelCard) -> tuple[list[str], list[str], float]:
    """(validation people, test people, train_offset_p99_px) of a run's card; older cards lack the first
    and the last: they are re-derived from the card's data and config."""
    data = card.data
    if data.val_people is not None and data.test_people is not None and card.train_offset_p99_px is not None:
        return data.val_people, data.test_people, card.train_offset_p99_px
    config = RecipeConfig.from_dict(card.config)
    split = make_split(read_kaggle_csv(config.data), config)
    if sorted(set(split.test.people)) != sorted(data.test_people or []):
        raise ValueError(f"{config.data} no longer gives the card's split (its test people differ).")
    return sorted(set(split.val.people)), sorted(set(split.test.people)), face_offset_p99(split.train)


def model_of(run_or_file: str) -> Path:
    """A run's model.keras, or a .keras file (with its JSON card beside it), e.g. an earlier shipped model."""
    if run_or_file.endswith(".keras"):
        if not card_path_for(run_or_file).is_file():
            raise ValueError(f"{run_or_file} has no card ({card_path_for(run_or_file).name}) beside it.")
        return Path(run_or_file)
    return safe_run_dir(run_or_file, runs_dir()) / "model.keras"


def _import_report(data_source: str | None) -> dict | None:
    """The importer's report beside a training file (trainer.importer writes `<data>.report.json`), if any."""
    path = Path(f"{data_source}.report.json")
    return json.loads(path.read_text()) if data_source and path.is_file() else None


def ship(run_name: str, frames: str | None = None, target: Path = SHIPPED_MODEL,
         locator_run: str | None = None) -> ModelCard:
    """Copy a run's model (or a .keras file with its card) to `target`, measured on `frames` when given."""
    model_path = model_of(run_name)
    validate_keras_model(model_path)  # a model with broken output is never shipped
    card = ModelCard.read(model_path)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model.keras"
        save_model(inference_copy(load_keras_model(model_path)), staged)
        card.model = target.name
        card.shipped_from_run = card.shipped_from_run if run_name.endswith(".keras") else run_name
        report = _import_report(card.data.source)
        if report:  # how many frames the detector found when the data was imported
            card.data.import_report = {k: report.get(k) for k in ("frames", "imported", "detection_rate", "people",
                                                                  "rows", "jitter", "command")}
        card.locator = None
        card.inference.int8 = None  # only a twin made and measured by this ship is shipped
        if locator_run:
            card.locator = _stage_locator(locator_run, card, staged.with_name(LOCATOR_NAME))
        elif card.inference.recentre and card.inference.recentre.locator:
            card.inference.recentre = None  # its locator is not shipped this time
        if frames and card.data.test_people:
            option, float_val = _measure_inference_options(staged, card, frames, locator_run is not None)
            _measure_int8_twin(staged, card, frames, option, float_val)
        # a locator that the chosen option does not use is not shipped (its measurements stay in the card)
        with_locator = locator_run is not None and (not frames or card.inference.recentre is not None)
        card.reproduce = _reproduce(card, run_name, locator_run, target)  # with the locator: it was measured
        if not with_locator:
            card.locator = None
        card.write(staged)
        _install(staged, target, with_locator=with_locator)
    return card


def _stage_locator(locator_run: str, card: ModelCard, staged: Path) -> LocatorInfo:
    """Save the locator run's model at `staged` and describe it for the card; it must share the test people."""
    locator_path = model_of(locator_run)
    locator_card = ModelCard.read(locator_path)
    if sorted(locator_card.data.test_people or []) != sorted(card.data.test_people or []):
        raise ValueError(f"run {locator_run} was tested on other people than the model; it cannot be its locator.")
    validate_keras_model(locator_path)
    save_model(inference_copy(load_keras_model(locator_path)), staged)
    report = _import_report(locator_card.data.source) or locator_card.data.import_report or {}
    locator_card.model = staged.name
    locator_card.data.import_report = report or None
    locator_card.write(staged)  # shipped beside it: a later ship can take models/keypoints-locator.keras as --locator
    data = locator_card.data
    return LocatorInfo(run=locator_card.run or locator_run, file=LOCATOR_NAME, command=locator_card.command,
                       import_command=report.get("command"),
                       data={"source": data.source, "rows": data.rows, "train_rows": data.train_rows,
                             "train_jitter_copies": data.train_jitter_copies},
                       parent=locator_card.parent, wall_s=locator_card.wall_s, sha256=file_sha256(staged))


def _install(staged: Path, target: Path, with_locator: bool) -> None:
    """Move the staged files into place one by one (core.files.atomic_path); a locator not shipped is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    located, target_locator = staged.with_name(LOCATOR_NAME), target.with_name(LOCATOR_NAME)
    pairs = [(staged.with_suffix(s), target.with_suffix(s)) for s in (".onnx", ".json", ".keras")]  # .keras last
    if int8_path_for(staged).is_file():
        pairs.insert(0, (int8_path_for(staged), int8_path_for(target)))
    else:  # a twin of the previous weights would be refused by its hash anyway; do not leave it lying about
        int8_path_for(target).unlink(missing_ok=True)
    if with_locator:
        pairs = [(located.with_suffix(s), target_locator.with_suffix(s)) for s in (".onnx", ".json", ".keras")] + pairs
    for source, final in pairs:
        with atomic_path(final) as tmp:
            shutil.copy2(source, tmp)
    if not with_locator:
        for suffix in (".keras", ".onnx", ".json"):
            target_locator.with_suffix(suffix).unlink(missing_ok=True)


def inference_options(offset_p99: float, has_locator: bool) -> list[dict]:
    """The inference options ship measures, in order of preference: plain, flip-averaged, then flip-averaged
    with re-centring at each threshold (multiples GATE_FACTORS of offset_p99), the largest (fewest faces moved) first."""
    locator = LOCATOR_NAME if has_locator else ""
    return [dict(flip_average=False, recentre=False), dict(flip_average=True, recentre=False)] + [
        dict(flip_average=True, recentre=Recentring(locator, min_offset_px=round(f * offset_p99, 2)))
        for f in sorted(GATE_FACTORS, reverse=True)]


def choose_option(validation: Sequence[dict]) -> int:
    """Index of the option with the lowest validation NME (one trainer.evaluate result per option); ties go to
    the option listed first, and an option that found no face (no "nme") is never chosen over one that did."""
    return min(range(len(validation)), key=lambda i: validation[i].get("nme", float("inf")))


def _measure_inference_options(staged: Path, card: ModelCard, frames: str, has_locator: bool) -> tuple[dict, dict]:
    """Choose flip averaging and the re-centring threshold on the validation people; report on the test people.

    Fills the card's inference, evaluations and metrics.end_to_end. The test people are evaluated only
    for the chosen option and the two without re-centring, after the choice. Returns the chosen option
    (evaluate_frames keywords) and its validation result.
    """
    val_people, test_people, offset_p99 = held_out_people(card)
    card.data.val_people, card.train_offset_p99_px = val_people, offset_p99
    options = inference_options(offset_p99, has_locator)
    measure = lambda people, option: evaluate_frames(  # noqa: E731
        staged, frames, people, mean_shape_crop=card.mean_shape_crop, **option)
    val = [measure(val_people, o) for o in options]
    chosen = choose_option(val)
    reported = sorted({0, 1, chosen})
    test = {i: measure(test_people, options[i]) for i in reported}
    card.inference = Inference(flip_average=options[chosen]["flip_average"],
                               recentre=options[chosen]["recentre"] or None, chosen_on="validation people")
    card.evaluations = ([Evaluation.from_dict({"people": "validation", **r}) for r in val]
                        + [Evaluation.from_dict({"people": "test", **test[i]}) for i in reported])
    card.metrics.end_to_end = EndToEnd.from_dict(test[chosen])
    return options[chosen], val[chosen]


def _measure_int8_twin(staged: Path, card: ModelCard, frames: str, option: dict, float_val: dict) -> None:
    """Make the int8 twin beside `staged` (calibrated on training faces of the card's split) and record its
    validation NME with the chosen `option` against the float twin's (`float_val`) in card.inference.int8;
    nothing when the training data is gone."""
    config = RecipeConfig.from_dict(card.config)
    if not Path(config.data).is_file():
        return
    train = make_split(read_kaggle_csv(config.data), config).train
    picked = np.random.default_rng(config.seed).choice(len(train), min(CALIBRATION_FACES, len(train)), replace=False)
    quantize_onnx(onnx_path_for(staged), train.images[np.sort(picked)], int8_path_for(staged), file_sha256(staged))
    int8_val = evaluate_frames(staged, frames, card.data.val_people, mean_shape_crop=card.mean_shape_crop,
                               int8=True, **option)
    card.inference.int8 = Int8Verdict(nme=int8_val.get("nme"), float_nme=float_val.get("nme"),
                                      frames_above_010=int8_val.get("frames_above_0.10"),
                                      live="nme" in int8_val and "nme" in float_val
                                           and int8_val["nme"] <= float_val["nme"] * (1 + INT8_NME_TOLERANCE),
                                      measured_on="validation people")


def _reproduce(card: ModelCard, run_name: str, locator_run: str | None, target: Path) -> list[str]:
    frames = SHARED_68_DATASET_ARG
    steps = [(card.data.import_report or {}).get("command")
             or f"python -m trainer import-68 {frames} --out data/youtube68.csv.gz"]
    locator = card.locator or LocatorInfo()
    if locator.import_command:
        steps.append(locator.import_command)
    parent = card.parent or locator.parent
    if parent:
        steps.append(f"# fine-tuning starts from {parent['path']} (sha256 {parent['sha256'][:12]}, run {parent.get('run')}), "
                     f"an earlier shipped model (git history of models/), trained by: {parent.get('command')}")
    # the card's own config, not a preset that may change or a --config file that may be gone (card.command says
    # how the run was started)
    card_arg = card_path_for(target).relative_to(target.parent.parent)
    steps.append(f"python -m trainer train --config {card_arg} --run {card.run or Path(run_name).stem}" if card.config
                 else card.command or f"python -m trainer train --run {run_name}")
    if locator_run:
        steps.append(locator.command or f"python -m trainer train --run {locator_run} (see its config)")
    steps.append(f"python -m trainer ship {run_name} --frames {frames}" + (f" --locator {locator_run}" if locator_run else ""))
    steps.append(f"python -m trainer evaluate --model {target.relative_to(target.parent.parent)} --frames {frames}")
    return steps
