"""`python -m core annotate`: faces, keypoints and an effect on every image of files or folders.

Writes one annotated image per input into --out and one keypoints.csv (a row per face). A file
that cannot be read is reported and skipped; the run goes on and ends with a summary. In a folder,
only image files (IMAGE_SUFFIXES) are read. Inputs sharing a stem (photo.jpg, photo.png) get
distinct output names (photo_annotated.png, photo_png_annotated.png).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from core.detector import DetectorSettings
from core.export import faces_dataframe
from core.images import ImageError, load_image
from core.model import ModelError, probe_face_crops
from core.overlays import EFFECTS
from core.pipeline import FacePipeline, render
from core.registry import active_model_path
from core.schema import CROP_SIZE

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def _inputs(paths: list[str]) -> tuple[list[Path], int]:
    """Files as given, folders expanded (sorted, recursively) to their image files; and how many
    other files the folders held (skipped, not failures)."""
    out: list[Path] = []
    others = 0
    for p in map(Path, paths):
        if not p.is_dir():
            out.append(p)
            continue
        inside = sorted(f for f in p.rglob("*") if f.is_file())
        images = [f for f in inside if f.suffix.lower() in IMAGE_SUFFIXES]
        out.extend(images)
        others += len(inside) - len(images)
    return out, others


def _output_name(path: Path, taken: set[str]) -> str:
    """`<stem>_annotated.png`, or with the extension (and then a number) added when an earlier input took it."""
    suffix = path.suffix.lstrip(".").lower()
    candidates = [path.stem, f"{path.stem}_{suffix}"] + [f"{path.stem}_{suffix}_{n}" for n in range(2, len(taken) + 3)]
    name = next(f"{c}_annotated.png" for c in candidates if f"{c}_annotated.png" not in taken)
    taken.add(name)
    return name


def _predictor_problem(pipeline: FacePipeline) -> str | None:
    """What core.model.validate_model refuses, through the pipeline's own ONNX twin (no Keras import): a model
    whose keypoints on a test face are not finite or leave the crop would annotate every face with nothing."""
    keypoints = pipeline.predictor.predict_crops(probe_face_crops())
    name = pipeline.predictor.keras_path.name
    if not np.isfinite(keypoints).all():
        return (f"{name} predicts non-finite keypoints (NaN or infinity) on a test face: its weights are broken. "
                "Choose another --model.")
    if keypoints.min() < 0 or keypoints.max() > CROP_SIZE:
        return f"{name} puts keypoints outside the 96x96 face crop on a test face. Choose another --model."
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("annotate", help="annotate images (files and/or folders)")
    a.add_argument("inputs", nargs="+")
    a.add_argument("--out", required=True, help="output folder")
    a.add_argument("--effect", default="keypoints", choices=EFFECTS)
    a.add_argument("--privacy", choices=("blur", "pixelate"), help="privacy mode: only hide faces (overrides --effect)")
    a.add_argument("--model", help=".keras model (default: the active model)")
    a.add_argument("--min-neighbors", type=int, default=5, help="detector strictness (lower finds more faces)")
    args = p.parse_args(argv)

    try:
        pipeline = FacePipeline(args.model or active_model_path(), DetectorSettings(min_neighbors=args.min_neighbors))
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problem = _predictor_problem(pipeline)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        print(f"error: --out {args.out} is a file; give a folder (it is created if missing)", file=sys.stderr)
        return 2
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: cannot create the --out folder {args.out}: {exc.strerror}", file=sys.stderr)
        return 2
    effect = args.privacy or args.effect
    files, others = _inputs(args.inputs)
    tables, failures, faces_total, taken = [], [], 0, set[str]()
    for i, path in enumerate(files, 1):
        print(f"\r[{i}/{len(files)}] {path.name[:40]:<40}", end="", file=sys.stderr, flush=True)
        try:
            image = load_image(path)
        except ImageError as exc:
            failures.append((path, str(exc)))
            continue
        faces = pipeline.find_faces(image)
        target = out_dir / _output_name(path, taken)
        if not cv2.imwrite(str(target), render(image, faces, effect)):
            failures.append((path, f"could not write {target.name}"))
            continue
        faces_total += len(faces)
        tables.append(faces_dataframe(faces, image_name=str(path)))
    print(file=sys.stderr)
    csv_path = out_dir / "keypoints.csv"
    (pd.concat(tables, ignore_index=True) if tables else faces_dataframe([], image_name="")).to_csv(csv_path, index=False)
    print(f"images: {len(files) - len(failures)} annotated, {len(failures)} failed; faces: {faces_total}"
          + (f"; {others} non-image files in the folders skipped" if others else ""))
    for path, reason in failures:
        print(f"  skipped {path}: {reason}")
    print(f"wrote {csv_path} and {len(files) - len(failures)} images to {out_dir}")
    return 0 if len(failures) < len(files) or not files else 1


if __name__ == "__main__":
    sys.exit(main())
