"""Promote a finished run to the shipped model (models/keypoints.keras + .onnx + .json card).

The card gains what a reader needs to trust the numbers: the end-to-end evaluation of each
inference option (plain, flip-averaged, flip-averaged + re-centred second pass) on the held-out
people, the option the app will use (the best NME), and the commands that reproduce it all.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from core.model import card_path_for, inference_copy, load_keras_model, save_model
from core.paths import SHIPPED_MODEL, runs_dir
from trainer.runs import safe_run_dir, write_json_atomic

INFERENCE_OPTIONS = ({"flip_average": False, "refine": False}, {"flip_average": True, "refine": False},
                     {"flip_average": True, "refine": True})


def ship(run_name: str, frames: str | None = None, target: Path = SHIPPED_MODEL) -> dict:
    run = safe_run_dir(run_name, runs_dir())
    card = json.loads(card_path_for(run / "model.keras").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "model.keras"
        save_model(inference_copy(load_keras_model(run / "model.keras")), staged)
        card["model"] = target.name
        card["shipped_from_run"] = run_name
        import_report = Path(card["data"]["source"] + ".report.json")
        if import_report.is_file():  # how many frames the detector found when the data was imported
            report = json.loads(import_report.read_text())
            card["data"]["import"] = {k: report.get(k) for k in ("frames", "imported", "detection_rate", "people",
                                                                 "rows", "jitter", "command")}
        if frames and card.get("data", {}).get("test_people"):
            from trainer.evaluate import evaluate_frames

            write_json_atomic(card_path_for(staged), card)  # evaluate reads the mean shape from the card
            results = [evaluate_frames(staged, frames, card["data"]["test_people"], **option)
                       for option in INFERENCE_OPTIONS]
            best = min(results, key=lambda r: r.get("nme", float("inf")))
            card["evaluations"] = results
            card["inference"] = {"flip_average": best["flip_average"], "refine": best["refine"]}
            card["metrics"]["end_to_end"] = best
        card["reproduce"] = [
            card["data"].get("import", {}).get("command")
            or "python -m trainer import-68 ../shared/data/youtube-faces-68/training.zip --out data/youtube68.csv.gz",
            card.get("command") or f"python -m trainer train --run {run_name} (see config)",
            f"python -m trainer ship {run_name} --frames ../shared/data/youtube-faces-68/training.zip",
            f"python -m trainer evaluate --model {target.relative_to(target.parent.parent)} "
            "--frames ../shared/data/youtube-faces-68/training.zip",
        ]
        write_json_atomic(card_path_for(staged), card)
        target.parent.mkdir(parents=True, exist_ok=True)
        for suffix in (".onnx", ".json", ".keras"):  # .keras last: its mtime must not be newer than .onnx
            shutil.copy2(staged.with_suffix(suffix), target.with_suffix(suffix + ".tmp"))
            Path(target.with_suffix(suffix + ".tmp")).replace(target.with_suffix(suffix))
    return card
