"""Models in and out: one zip archive per model, written from a finished run (or the shipped model)
and registered back as a run folder.

    model.keras        the model (safe_mode-loadable)
    model.onnx         its ONNX twin (fast inference); on import it is rebuilt from the checked .keras
    model.json         the card (data, split, metrics, inference options)
    <locator>.keras    + .onnx: only when the card re-centres faces with a locator model (core.pipeline.Recentring)

An archive comes from people, so import checks everything before anything lands in runs/: the zip's
size and members (no zip bombs, no paths, nothing missing or extra), then each model with
trainer.export.validate_keras_model (safe_mode load, shapes, a finite test inference inside the crop). The run
is staged in a hidden folder and renamed into place; an existing run is never overwritten, and an
imported run never becomes the active model by itself.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import time
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

from core.card import ModelCard, card_path_for
from core.files import atomic_path, write_json_atomic
from core.model import ModelError, file_sha256, onnx_path_for, twin_command, twin_problem
from core.paths import SHIPPED_MODEL, runs_dir
from core.registry import SHIPPED_NAME, safe_run_dir
from trainer.config import RecipeConfig
from trainer.export import export_onnx, load_keras_model, validate_keras_model

MODEL, ONNX, CARD = "model.keras", "model.onnx", "model.json"
#: A locator file named by a card: a plain file name, never a path.
LOCATOR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\.keras$")
MAX_ARCHIVE_BYTES = 600 * 2**20
MAX_MEMBER_BYTES = 200 * 2**20  # the full-width model is 6.4 MB; the card a few kB
MAX_CARD_BYTES = 2 * 2**20
MAX_MEMBERS = 5
#: Uncompressed / compressed size above which a member is refused as a zip bomb (models compress ~1.1x, cards ~5x).
MAX_COMPRESSION_RATIO = 100


class ArchiveError(ValueError):
    """An archive that cannot be exported or imported; the message says why, without server paths."""


def locator_of(card: ModelCard) -> str | None:
    """The locator model file a card's re-centring uses, or None; a name that is not a plain file name is refused."""
    name = card.inference.recentre.locator if card.inference.recentre else None
    if not name:
        return None
    if not isinstance(name, str) or not LOCATOR_NAME.fullmatch(name) or ".." in name or name == MODEL:
        raise ArchiveError(f"The card names a locator model {name!r} that is not a plain .keras file name.")
    return name


def model_for(run: str) -> Path:
    """The .keras file of a finished run, or of the shipped model for 'shipped'."""
    path = SHIPPED_MODEL if run == SHIPPED_NAME else safe_run_dir(run, runs_dir()) / MODEL
    if not path.is_file() or not card_path_for(path).is_file():
        raise ArchiveError(f"Run {run!r} has no finished model (model.keras with its card) to export.")
    return path


def export_archive(run: str, out: str | os.PathLike | BinaryIO) -> list[str]:
    """Write run's model, ONNX twin, card (and locator) into a zip at `out` (a path or a binary stream).

    A path is written to a temp name and renamed, and an existing file is refused. Returns the member names.
    """
    keras_path = model_for(run)
    card = ModelCard.read(keras_path)
    card.model = MODEL
    files = {MODEL: keras_path}
    locator = locator_of(card)
    if locator:
        files[locator] = keras_path.parent / locator
        if not files[locator].is_file():
            raise ArchiveError(f"Run {run!r} re-centres with {locator}, which is missing.")
    if not isinstance(out, (str, os.PathLike)):
        return _write_zip(out, files, card)
    out = Path(out)
    if out.exists():
        raise ArchiveError(f"{out.name} already exists; choose another file name.")
    with atomic_path(out) as tmp, open(tmp, "wb") as stream:
        members = _write_zip(stream, files, card)
    return members


def archive_bytes(run: str, model_mtime: float = 0.0) -> bytes:
    """The archive of `run` in memory (the training page's download; `model_mtime` keys its cache)."""
    buffer = io.BytesIO()
    export_archive(run, buffer)
    return buffer.getvalue()


def _write_zip(stream: BinaryIO, files: dict[str, Path], card: ModelCard) -> list[str]:
    # Models are stored as they are: deflating them saves little and costs several times the time.
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_STORED) as zf:
        for name, keras_path in files.items():
            zf.write(keras_path, name)
            zf.write(_current_onnx(keras_path), onnx_path_for(name).name)
        zf.writestr(CARD, json.dumps(card.to_dict(), indent=1), compress_type=zipfile.ZIP_DEFLATED)
        return zf.namelist()


def _current_onnx(keras_path: Path) -> Path:
    """The ONNX twin beside `keras_path`, which must have been exported from these weights: packing an archive
    (also on the Training page, in the server) never exports one."""
    problem = twin_problem(keras_path)
    if problem:
        raise ModelError(f"The ONNX twin of {keras_path.name} is {problem}; make it with: "
                         f"{twin_command(keras_path)}, then export again.")
    return onnx_path_for(keras_path)


def import_archive(source: str | os.PathLike | BinaryIO, run_name: str | None = None,
                   root: str | os.PathLike | None = None) -> Path:
    """Check an archive and register it as a finished run; returns the run folder.

    The run is named `run_name`, else after the card's run; an existing run name is refused.
    Raises ArchiveError (a ValueError) with a message fit for a page or a terminal.
    """
    root = Path(root or runs_dir())
    root.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(source) as zf:
            card = _check_members(zf)
            name = run_name or str(card.run or "")
            try:
                target = safe_run_dir(name, root)
            except ValueError as exc:
                raise ArchiveError(f"{exc} Choose a run name for the imported model.") from None
            if target.exists():
                raise ArchiveError(f"A run named '{name}' already exists; choose another name.")
            staging = Path(tempfile.mkdtemp(prefix=".import-", dir=root))
            try:
                _stage(zf, card, staging, name)
                try:
                    os.rename(staging, target)  # atomic; fails when a run of that name appeared meanwhile
                except OSError:
                    raise ArchiveError(f"A run named '{name}' already exists; choose another name.") from None
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except (zipfile.BadZipFile, zlib.error, EOFError):
        raise ArchiveError("This file is not a zip archive, or it is damaged.") from None
    write_finished_run_files(target, card, imported=True)
    return target


def _check_members(zf: zipfile.ZipFile) -> ModelCard:
    """Sizes, names and the card of an archive, before anything is extracted; returns the card."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ArchiveError(f"The archive holds {len(infos)} files; a model archive holds at most {MAX_MEMBERS}.")
    names = [i.filename for i in infos]
    for info in infos:
        if "/" in info.filename or "\\" in info.filename or info.filename.startswith(".") or info.is_dir():
            raise ArchiveError(f"The archive member {info.filename!r} is a path; a model archive holds plain files only.")
        limit = MAX_CARD_BYTES if info.filename == CARD else MAX_MEMBER_BYTES
        if info.file_size > limit:
            raise ArchiveError(f"{info.filename} is {info.file_size / 2**20:.0f} MB uncompressed; "
                               f"the limit is {limit / 2**20:.0f} MB.")
        if info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1) and info.file_size > 2**20:
            raise ArchiveError(f"{info.filename} expands {info.file_size // max(info.compress_size, 1)}x: "
                               "refused as a zip bomb.")
    if sum(i.file_size for i in infos) > MAX_ARCHIVE_BYTES:
        raise ArchiveError("The archive is too large uncompressed.")
    if len(set(names)) != len(names):
        raise ArchiveError("The archive holds the same file name twice.")
    if MODEL not in names or CARD not in names:
        missing = ", ".join(n for n in (MODEL, CARD) if n not in names)
        raise ArchiveError(f"The archive lacks {missing}: export one with `python -m trainer export RUN OUT.zip`.")
    try:
        raw = json.loads(_read_member(zf, CARD, MAX_CARD_BYTES))
    except ValueError:
        raise ArchiveError(f"{CARD} in the archive is not valid JSON.") from None
    if not isinstance(raw, dict):
        raise ArchiveError(f"{CARD} in the archive is not a model card (a JSON object).")
    try:
        card = ModelCard.from_dict(raw)
    except ValueError as exc:
        raise ArchiveError(f"{CARD} in the archive is {exc}.") from None
    locator = locator_of(card)
    expected = {MODEL, ONNX, CARD} | ({locator, onnx_path_for(locator).name} if locator else set())
    if locator and locator not in names:
        raise ArchiveError(f"The card re-centres faces with {locator}, which the archive lacks.")
    extra = sorted(set(names) - expected)
    if extra:
        raise ArchiveError(f"The archive holds files a model archive does not: {', '.join(extra)}.")
    return card


def _read_member(zf: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """A member's bytes, never more than `limit` whatever its header claims."""
    with zf.open(name) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise ArchiveError(f"{name} is larger than its limit of {limit / 2**20:.0f} MB.")
    return data


def _stage(zf: zipfile.ZipFile, card: ModelCard, staging: Path, name: str) -> None:
    """Extract the models into `staging`, check each one, rebuild their ONNX twins, write the card."""
    locator = locator_of(card)
    for member in [MODEL] + ([locator] if locator else []):
        path = staging / member
        path.write_bytes(_read_member(zf, member, MAX_MEMBER_BYTES))
        try:
            validate_keras_model(path)
        except ModelError as exc:
            reason = str(exc).replace(f"{staging}{os.sep}", "").replace(str(staging), "")  # no server paths
            raise ArchiveError(f"The archive's {member} was refused: {reason}") from None
        # The archive's .onnx is not trusted (a graph can read external files): rebuild it from the checked model.
        export_onnx(load_keras_model(path), onnx_path_for(path), source_sha256=file_sha256(path))
    # An int8 twin is never taken from an archive (no calibration data to rebuild it from), so the card's
    # verdict on one does not hold for this run: the webcam runs its float twin.
    card.inference.int8 = None
    card.imported = {"sha256": file_sha256(staging / MODEL), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                     "from_run": card.run}
    card.model, card.run = MODEL, name
    card.write(staging / MODEL)


def write_finished_run_files(target: Path, card: ModelCard, **how: bool) -> None:
    """config.json (what lists the run) and a finished state saying `how` it was made (imported, ensemble),
    after the model files are in place: a run folder holding a model that no training of its own made."""
    try:
        config = RecipeConfig.from_dict(card.config).to_dict()
    except (KeyError, TypeError, ValueError):  # a card without a readable recipe: record the architecture only
        widths = card.architecture.widths
        config = (RecipeConfig(widths=tuple(widths)) if isinstance(widths, list) else RecipeConfig()).to_dict()
    write_json_atomic(target / "state.json", {"finished": True, **how})
    write_json_atomic(target / "config.json", config)
