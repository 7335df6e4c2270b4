"""The model card: what a model is, what it was trained on, how well it did, and how to run it.

Written by the trainer (a run's `model.json`, the shipped `models/keypoints.json`), read by the
pipeline (inference options, the mean face position in the crop) and by the pages. One typed object
instead of dict keys spelled out in every reader; `from_dict` accepts older cards (missing keys take
their defaults) and keeps keys it does not know, so reading and writing a card never loses anything.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from core.files import write_json_atomic

T = TypeVar("T")
C = TypeVar("C", bound="_Card")


def _from_dict(cls: type[T], d: dict | None) -> T:
    """Build a card dataclass from a dict: known keys by name (aliases via field metadata), the rest in `extra`."""
    d = dict(d or {})
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cast(Any, cls)):
        if f.name == "extra":
            continue
        key = f.metadata.get("key", f.name)
        if key in d:
            value = d.pop(key)
            nested = f.metadata.get("type")
            if nested and value is None:
                continue  # an empty section reads as its defaults
            if nested and f.metadata.get("list"):
                if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                    raise ValueError(f"not a model card: its {key!r} is not a list of objects")
                kwargs[f.name] = [_from_dict(nested, v) for v in value]
                continue
            if nested and not isinstance(value, dict):
                raise ValueError(f"not a model card: its {key!r} is not an object")
            kwargs[f.name] = _from_dict(nested, value) if nested else value
    if any(f.name == "extra" for f in dataclasses.fields(cast(Any, cls))):
        kwargs["extra"] = d
    return cls(**kwargs)


def _to_dict(obj: Any) -> dict:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name == "extra":
            out.update(value)
            continue
        if value is None and f.metadata.get("null"):
            out[f.metadata.get("key", f.name)] = None  # evaluate_frames always says whether it re-centred
            continue
        if value is None or (value in ({}, []) and f.default is dataclasses.MISSING):
            continue  # absent, as in the card it was read from
        if dataclasses.is_dataclass(value):
            value = _to_dict(value)
            if not value:
                continue
        elif isinstance(value, list) and f.metadata.get("list"):
            value = [_to_dict(v) for v in value]
        out[f.metadata.get("key", f.name)] = value
    return out


class _Section:
    """from_dict / to_dict of a card section (a dataclass): unknown keys kept in `extra` where it has one."""

    @classmethod
    def from_dict(cls: type[T], d: dict | None) -> T:
        return _from_dict(cls, d)

    def to_dict(self) -> dict:
        return _to_dict(self)


@dataclass
class Architecture(_Section):
    """`head`: trainer.architecture.HEADS ("gap", "flatten" or "softargmax"); None on cards written before
    the card recorded it (read `ModelCard.head`)."""

    widths: list[int] = field(default_factory=list)
    dropout: float | None = None
    input: list[int] | None = None
    head: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class EndToEnd(_Section):
    """trainer.evaluate.evaluate_frames on held-out frames: detection, NME (by the inter-ocular distance),
    and the inference options it ran with."""

    frames: int | None = None
    detected: int | None = None
    detection_rate: float | None = None
    nme: float | None = None
    nme_median_frame: float | None = None
    frames_above_010: float | None = field(default=None, metadata={"key": "frames_above_0.10"})
    per_keypoint_nme: dict[str, float] | None = None
    crop_rmse_px: float | None = None
    ms_per_face: float | None = None
    flip_average: bool | None = None
    recentre: dict | None = field(default=None, metadata={"null": True})
    extra: dict = field(default_factory=dict)


@dataclass
class Evaluation(EndToEnd):
    """One inference option measured by `trainer ship`; `people`: "validation" or "test"."""

    people: str | None = None


@dataclass
class Metrics(_Section):
    """The recipe's test rows in crop pixels, and end to end on the test people (trainer.evaluate)."""

    test_rmse_px: float | None = None
    test_rows: int | None = None
    per_keypoint_rmse_px: dict[str, float] | None = None
    end_to_end: EndToEnd | None = field(default=None, metadata={"type": EndToEnd})
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Recentring(_Section):
    """Move a detector crop onto the face before the keypoint model reads it.

    The Haar box of a turned head centres on the head, not the face, so the face can sit 20-30 crop
    px off-centre, where the model (trained on detector crops) falls back to a frontal layout.
    A locator model (fine-tuned on crops jittered around the detection, trainer.importer) runs
    `passes` times, the crop shifted onto its prediction between passes. Only a face whose crop
    moved more than `min_offset_px` (crop px) in total is re-framed, around the last prediction,
    the way training crops are framed (core.geometry.crop_around_points): re-framing a
    well-centred face costs accuracy, and the total move over several passes tells a badly
    framed face from the locator's noise better than one pass does. `locator` is a model file
    beside the keypoint model ("" = the keypoint model itself).
    """

    locator: str = ""
    passes: int = 3
    #: Default: how far the detector put the 99th-percentile YouTube-faces training face off the
    #: mean position (a card's train_offset_p99_px); trainer.ship chooses a card's own threshold.
    min_offset_px: float = 8.9

    @classmethod
    def from_card(cls, inference: Inference) -> Recentring | None:
        """The card's `inference.recentre`; None when the card chose no re-centring."""
        return inference.recentre


@dataclass
class Int8Verdict(_Section):
    """The int8 twin (trainer.export.quantize_onnx) measured with the chosen option on the validation people
    against the float twin; `live`: it keeps the float NME (trainer.ship's INT8_NME_TOLERANCE), so the webcam
    runs it (core.pipeline.FacePipeline.live_predictor)."""

    nme: float | None = None
    float_nme: float | None = None
    frames_above_010: float | None = field(default=None, metadata={"key": "frames_above_0.10"})
    live: bool | None = None
    measured_on: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class LocatorInfo(_Section):
    """The locator model shipped beside a keypoint model (trainer.ship --locator): where it came from."""

    run: str | None = None
    file: str | None = None
    command: str | None = None
    import_command: str | None = None
    data: dict | None = None
    parent: dict | None = None
    wall_s: float | None = None
    sha256: str | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class DataSummary(_Section):
    """The training file and its split; `test_people` / `val_people` are the people held out and `train_people`
    the people trained on (None: split by row, or a card older than the field)."""

    source: str | None = None
    rows: int | None = None
    complete_rows: int | None = None
    people: int | None = None
    split: str | None = None
    train_rows: int | None = None
    train_jitter_copies: int | None = None
    val_rows: int | None = None
    test_rows: int | None = None
    pseudo_labelled_rows: int | None = None
    seed: int | None = None
    test_people: list[str] | None = None
    val_people: list[str] | None = None
    train_people: list[str] | None = None
    #: The importer's report of the file (frames, detection rate, command), when it came from one.
    import_report: dict | None = field(default=None, metadata={"key": "import"})
    extra: dict = field(default_factory=dict)

    def describe(self) -> str:
        """What a model was trained on, in words: a data file name alone means nothing on a fresh clone."""
        imported = self.import_report or {}
        if imported.get("frames"):
            what = (f"YouTube-faces video frames with 68 labelled points each, mapped to the 15 keypoints: "
                    f"{self.rows or imported.get('rows')} faces of {self.people or imported.get('people')} "
                    f"people from {imported['frames']} frames")
        elif self.rows is not None or self.source:
            name = Path(self.source or "a Kaggle-format file").name
            name = re.sub(r"^[0-9a-f]{12}-", "", name)  # an upload is stored under its hash (core.userfiles)
            what = f"{self.rows if self.rows is not None else '?'} rows of {name}"
        else:
            return "unknown"
        if self.train_rows:
            what += (f"; split {self.split or 'by row'}: {self.train_rows} train, "
                     f"{self.val_rows if self.val_rows is not None else '?'} validation, "
                     f"{self.test_rows if self.test_rows is not None else '?'} test rows")
        return what


@dataclass
class Inference(_Section):
    """How the app runs the model: chosen on validation people by `python -m trainer ship`."""

    flip_average: bool | None = None
    #: None: no re-centring.
    recentre: Recentring | None = field(default=None, metadata={"type": Recentring})
    chosen_on: str | None = None
    int8: Int8Verdict | None = field(default=None, metadata={"type": Int8Verdict})
    extra: dict = field(default_factory=dict)

    @property
    def int8_live(self) -> bool:
        """The card approves the int8 twin for the webcam."""
        return bool(self.int8 and self.int8.live)

    def describe(self) -> str:
        """The inference options in words."""
        parts = ["flip-averaged" if self.flip_average else "single pass"]
        if self.recentre:
            by = self.recentre.locator or "the model itself"
            parts.append(f"crops re-centred by {by} when a face sits over {self.recentre.min_offset_px} px off-centre")
        return ", ".join(parts)


class _Card:
    """from_dict / to_dict / read / write shared by the card types (a dataclass with an `extra` field)."""

    @classmethod
    def from_dict(cls: type[C], d: dict | None) -> C:
        """Raises ValueError when a nested section (architecture, data, inference, ...) is not an object."""
        return _from_dict(cls, d)

    def to_dict(self) -> dict:
        return _to_dict(self)

    @classmethod
    def read(cls: type[C], keras_path: str | os.PathLike) -> C:
        """The card beside a model file; raises OSError (no card) or ValueError (not a card)."""
        d = json.loads(card_path_for(keras_path).read_text())
        if not isinstance(d, dict):
            raise ValueError(f"{card_path_for(keras_path).name} is not a model card (a JSON object).")
        return cls.from_dict(d)

    @classmethod
    def read_or_empty(cls: type[C], keras_path: str | os.PathLike) -> C:
        """The card, or an empty card when it has none or it is unreadable (the model still runs)."""
        try:
            return cls.read(keras_path)
        except (OSError, ValueError, TypeError):
            return cls()

    def write(self, keras_path: str | os.PathLike) -> Path:
        return write_json_atomic(card_path_for(keras_path), self.to_dict())


@dataclass
class ModelCard(_Card):
    """Keys absent from a card read as None (or empty) and are not written back."""

    model: str | None = None
    run: str | None = None
    created: str | None = None
    command: str | None = None
    wall_s: float | None = None
    machine: str | None = None
    architecture: Architecture = field(default_factory=Architecture, metadata={"type": Architecture})
    data: DataSummary = field(default_factory=DataSummary, metadata={"type": DataSummary})
    #: The resolved trainer.recipe.RecipeConfig.
    config: dict = field(default_factory=dict)
    #: What a fine-tuned model started from (trainer.runs.parent_summary), else None.
    parent: dict | None = None
    metrics: Metrics = field(default_factory=Metrics, metadata={"type": Metrics})
    #: Where the detector's crop puts the average training face (15 x 2, crop px).
    mean_shape_crop: list | None = None
    #: 99th percentile of how far detector crops put a training face off that mean position.
    train_offset_p99_px: float | None = None
    keypoint_names: list[str] = field(default_factory=list)
    inference: Inference = field(default_factory=Inference, metadata={"type": Inference})
    #: Filled by `trainer ship`: each inference option measured on validation and test people.
    shipped_from_run: str | None = None
    evaluations: list[Evaluation] = field(default_factory=list, metadata={"type": Evaluation, "list": True})
    reproduce: list[str] = field(default_factory=list)
    locator: LocatorInfo | None = field(default=None, metadata={"type": LocatorInfo})
    #: Strategy, replicas in sync and worker addresses of a multi-machine run (trainer.distributed).
    distribution: dict | None = None
    #: Set by trainer.archive when the model came in as an archive: its sha256 and the run it was exported from.
    imported: dict | None = None
    extra: dict = field(default_factory=dict)

    @property
    def end_to_end(self) -> EndToEnd:
        """The test people's end-to-end figures (empty when the card has none)."""
        return self.metrics.end_to_end or EndToEnd()

    @property
    def head(self) -> str:
        """The model's head: the architecture's, else the config's (older cards), else the recipe's "gap"."""
        return self.architecture.head or self.config.get("head") or "gap"


@dataclass
class VerifierCard(_Card):
    """The face verifier's card (`models/face-verifier.json`), written by trainer.verifier, read by core.verifier."""

    model: str | None = None
    kind: str | None = None
    created: str | None = None
    command: str | None = None
    wall_s: float | None = None
    #: Boxes scoring under it are rejected; chosen on the validation people (threshold_rule says how).
    threshold: float | None = None
    threshold_rule: str | None = None
    input: str | None = None
    #: from (the keypoint model whose card gave the split), val_people, test_people.
    split: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    #: val / test: recall and precision (trainer.verifier.verifier_metrics).
    metrics: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def card_path_for(keras_path: str | os.PathLike) -> Path:
    return Path(keras_path).with_suffix(".json")


def read_card(keras_path: str | os.PathLike) -> ModelCard:
    """The model's card, or an empty card when it has none or it is unreadable (the model still runs)."""
    return ModelCard.read_or_empty(keras_path)
