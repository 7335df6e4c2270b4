"""`python -m trainer`: import data, train the recipe, evaluate a model, make a model active.

Every failure a person can cause (bad file, bad run name, missing model) ends in one line on
stderr and exit code 2, never a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

from core.card import read_card
from core.model import onnx_path_for
from core.paths import SHARED_68_DATASET_ARG, SHIPPED_MODEL, SHIPPED_VERIFIER, runs_dir
from core.registry import SHIPPED_NAME, activate, active_model_path, safe_run_dir
from trainer.architecture import HEADS
from trainer.losses import LOSSES
from trainer.presets import DEFAULT_PRESET, PRESET_NAMES

# Each command imports the trainer modules it uses (pandas, OpenCV, ONNX Runtime; Keras only when a model is
# built or read), so --help and a one-line error do not wait for all of them.

DEFAULT_DATA = Path("data") / "youtube68.csv.gz"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    imp = sub.add_parser("import-68", help="68-point frames (folder or zip) -> Kaggle-format CSV with person ids")
    imp.add_argument("frames", help="folder or .zip holding the frames (and, unless --csv, *_keypoints.csv)")
    imp.add_argument("--csv", help="the 68-point CSV, when it is not inside `frames`")
    imp.add_argument("--out", default=str(DEFAULT_DATA), help="output .csv or .csv.gz (default %(default)s)")
    imp.add_argument("--jitter-copies", type=int, default=0,
                     help="extra crops per frame from boxes jittered around the detection (training only)")
    imp.add_argument("--jitter-shift", type=lambda s: tuple(float(v) for v in s.split(",")), default=None,
                     help="x,y standard deviation of the jittered box centre, in box sides (default 0.12,0.06)")

    ks = sub.add_parser("kaggle-shape", help="a complete imported file -> one shaped like Kaggle's: ~70%% of the "
                                             "training people's rows keep only 4 points; held-out people stay complete")
    ks.add_argument("data", help="a complete file written by import-68 (with person ids)")
    ks.add_argument("--out", required=True, help="output .csv or .csv.gz")
    ks.add_argument("--fraction", type=float, default=0.7, help="share of training rows to blank (default %(default)s)")
    ks.add_argument("--seed", type=int, default=0, help="which rows are blanked (default %(default)s)")
    ks.add_argument("--test-size", type=float, default=0.1,
                    help="the split train will use: held-out rows (>=1) or fraction (<1) (default %(default)s)")

    p68 = sub.add_parser("points-68", help="the 68 iBUG points of an imported file's faces, beside it "
                                           "(<file>.points68.npz, for train --aux68), from the frames' labels")
    p68.add_argument("data", help="a file written by import-68 or kaggle-shape (with its frame column)")
    p68.add_argument("--frames", required=True, help="the 68-point frames (folder or zip) it was imported from")
    p68.add_argument("--csv", help="the 68-point CSV, when it is not inside --frames")

    tr = sub.add_parser("train", help="run (or resume) the training recipe")
    tr.add_argument("--data", default=None,
                    help=f"Kaggle-format .csv/.csv.gz/.zip (default: the --config file's data, else {DEFAULT_DATA})")
    tr.add_argument("--run", default=None, help="run name (folder under the runs directory); default: a timestamp")
    tr.add_argument("--preset", choices=PRESET_NAMES, default=None,
                    help=f"{DEFAULT_PRESET} (the default; with --config: full, so that a config or card trains "
                         "exactly what it says): the active model trained on this data for a few epochs with the "
                         "studio levers; studio: the recipe plus the levers that won on validation people, from "
                         "random weights; full: the "
                         "original recipe; fast: its half widths; quick: smoke test; finetune: a short "
                         "low-learning-rate continuation, with --init-from")
    tr.add_argument("--config", help="JSON file of RecipeConfig fields (a run's config.json, or a model card such as "
                                     "models/keypoints.json: its config), applied after the preset; the options "
                                     "below override it")
    tr.add_argument("--widths", type=lambda s: tuple(int(v) for v in s.split(",")), help="e.g. 16,32,64,128,256")
    tr.add_argument("--epochs", type=int, help="epochs per stage")
    tr.add_argument("--test-size", type=float, help="held-out rows (>=1) or fraction (<1) of complete rows")
    tr.add_argument("--pose-balance", type=float,
                    help="0 (the recipe) to 1: draw turned heads more often in each epoch (trainer.sampling)")
    tr.add_argument("--init-from", help="start from this .keras model's weights (fine-tune) instead of random ones")
    tr.add_argument("--no-pseudo", action="store_true", help="skip pseudo-labeling and the final cycle")
    tr.add_argument("--loss", choices=LOSSES, help="mse (the recipe), l1 or wing (trainer.losses)")
    tr.add_argument("--head", choices=HEADS,
                    help="gap (the recipe), flatten or softargmax (trainer.architecture.build_model)")
    tr.add_argument("--aux68", type=float, metavar="WEIGHT",
                    help="loss weight of an auxiliary head predicting the 68 iBUG points (needs the file's "
                         "points-68 sidecar); 0 = off (the presets); the saved model keeps the 15-point head only")
    tr.add_argument("--aux68-read15", action="store_true",
                    help="with --aux68: read the 15 points from the 68-point head instead of a head of their own")
    tr.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None,
                    help="force bfloat16 compute (or float32 with --no-mixed-precision); default: the preset's "
                         "(studio: bfloat16 only where the CPU has bf16 instructions); the saved model is float32")
    tr.add_argument("--masked-loss", action="store_true",
                    help="train incomplete rows in every stage, the loss masked to their labelled points")
    tr.add_argument("--strategy", choices=("none", "mirrored"), default=None)
    tr.add_argument("--workers", help="train on several machines: every worker's HOST:PORT, comma-separated, the same "
                                      "list on each machine (or set TF_CONFIG instead); worker 0 writes the run")
    tr.add_argument("--worker-index", type=int, help="this machine's position in --workers (0 = the chief)")
    tr.add_argument("--frames", help="68-point source of the data, to report end-to-end NME on held-out people")
    tr.add_argument("--quiet", action="store_true", help="no progress bar (events still go to events.jsonl)")

    evp = sub.add_parser("evaluate", help="end-to-end NME of a model on the held-out people of its card")
    evp.add_argument("--model", default=None, help=".keras file (default: the active model)")
    evp.add_argument("--frames", required=True, help="68-point frames folder or zip")
    evp.add_argument("--all-people", action="store_true", help="every frame, not only the card's test people")
    evp.add_argument("--flip-average", action=argparse.BooleanOptionalAction, default=None,
                     help="average with the mirrored crop (default: what the model card recommends)")
    evp.add_argument("--recentre", action=argparse.BooleanOptionalAction, default=None,
                     help="move crops onto off-centre faces first, as the card's inference.recentre says (default: "
                          "the card's choice; --recentre on a card without one uses the model itself as locator)")
    evp.add_argument("--rotate", help="comma-separated angles (deg): frames turned by 0 and +-each (canvas enlarged, "
                                      "labels turned with them), today's upright path and the any-roll path in one table")
    evp.add_argument("--people", choices=("val", "test", "both"), default="test",
                     help="the card's validation or test people, or both (default: test)")
    evp.add_argument("--every", type=int, default=1, help="with --rotate: every n-th frame only (a quick look)")

    shp = sub.add_parser("ship", help="copy a finished run's model to models/ as the app's shipped model")
    shp.add_argument("run", help="run name, or a .keras file with its card beside it (e.g. an earlier shipped model)")
    shp.add_argument("--frames", help="68-point frames: measure the inference options on the held-out people "
                                      "and record the best in the card")
    shp.add_argument("--locator", help="a run (or .keras file) fine-tuned on jittered crops, shipped as the re-centring locator")
    shp.add_argument("--to", default=None, help="where to write the shipped .keras (default: models/keypoints.keras)")

    ver = sub.add_parser("train-verifier", help="train the face verifier (is this box a face?) on mined detector boxes")
    ver.add_argument("--frames", required=True, help="68-point frames folder or zip (the keypoint model's source)")
    ver.add_argument("--split-from", default=None,
                     help="keypoint model whose card names the validation/test people (default: the shipped model)")
    ver.add_argument("--out", default=None, help="output .keras (default: models/face-verifier.keras)")
    ver.add_argument("--mined", default=None,
                     help="cache of mined crops (made on the first run, reused after; default data/verifier-mined.npz, "
                          "with --turned data/verifier-mined-turned.npz)")
    ver.add_argument("--turned", action="store_true",
                     help="also mine the turned copies the any-roll search makes (core.detector.RollSearch)")
    ver.add_argument("--epochs", type=int, help="training epochs (default: VerifierConfig's)")
    ver.add_argument("--exclude-people", metavar="FILE",
                     help="training people to leave out (names, one a line), to judge verifiers on people none saw")
    ver.add_argument("--contrast-norm", action="store_true",
                     help="normalise each crop's brightness and contrast inside the model (VerifierConfig.contrast_norm)")
    ver.add_argument("--sheets", help="only write contact sheets (PNG) of the mined hard negatives into this folder")

    ph = sub.add_parser("phantoms", help="boxes that hold no face, and faces kept, on the held-out people's frames")
    ph.add_argument("--frames", required=True, help="68-point frames folder or zip")
    ph.add_argument("--people", choices=("val", "test"), default="val",
                    help="the shipped model card's validation (default) or test people; report test people once")
    ph.add_argument("--no-verifier", action="store_true", help="the detector alone (the 'before' figure)")
    ph.add_argument("--sheets", help="also write every frame with an extra box as PNG sheets into this folder")

    exp = sub.add_parser("export", help="a finished run's model (or 'shipped') as one zip: .keras, .onnx, card")
    exp.add_argument("run", help="run name, or 'shipped'")
    exp.add_argument("out", help="the .zip file to write (an existing file is refused)")

    imm = sub.add_parser("import-model", help="check a model archive and register it as a finished run (not activated)")
    imm.add_argument("archive", help="a .zip written by `export` (or the training page's download)")
    imm.add_argument("--run", help="name of the new run (default: the run named in the archive's card)")

    ens = sub.add_parser("ensemble", help="average finished runs (split alike) into one model, a new finished run")
    ens.add_argument("members", nargs="+", help="run names (or .keras files with their cards), two or more")
    ens.add_argument("--run", required=True, help="name of the new run")

    act = sub.add_parser("activate", help="make a run's model (or 'shipped') the one the app uses")
    act.add_argument("run", help="run name, or 'shipped'")

    tw = sub.add_parser("twin", help="make (or refresh) the ONNX twin the app runs beside .keras files")
    tw.add_argument("models", nargs="+", help=".keras files (a keypoint model, a locator or the face verifier)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        commands = {"import-68": _import, "kaggle-shape": _kaggle_shape, "points-68": _points68,
                    "train": _train, "evaluate": _evaluate,
                    "activate": _activate, "ship": _ship,
                    "train-verifier": _train_verifier, "phantoms": _phantoms,
                    "export": _export, "import-model": _import_model, "ensemble": _ensemble,
                    "twin": _twin}
        return commands[args.command](args)
    except KeyboardInterrupt:
        print("interrupted; the run can be resumed with the same command", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as exc:  # DatasetError is a ValueError, ModelError a RuntimeError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not type(exc).__module__.startswith("tensorflow."):
            raise
        # e.g. a worker of a multi-machine run that died or stopped answering (trainer.distributed)
        print(f"error: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
              file=sys.stderr)
        return 2


def _import(args) -> int:
    from trainer.importer import JitterConfig, import_68_dataset

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            print(f"\rimporting {done}/{total}", end="", file=sys.stderr, flush=True)

    try:
        shift = {"shift_sd": args.jitter_shift} if args.jitter_shift else {}
        report = import_68_dataset(args.frames, args.out, csv_path=args.csv, progress=progress,
                                   jitter=JitterConfig(copies=args.jitter_copies, **shift))
    finally:
        print(file=sys.stderr)  # ends the progress line, so an error starts a line of its own
    print(json.dumps({k: v for k, v in report.to_dict().items() if k not in ("no_face",)} |
                     {"no_face": len(report.no_face)}, indent=1))
    print(f"wrote {args.out} ({report.imported} faces from {report.frames} frames; "
          f"{len(report.no_face)} frames with no face are listed in {args.out}.report.json)")
    return 0


def _kaggle_shape(args) -> int:
    from trainer.partial import write_kaggle_shaped

    report = write_kaggle_shaped(args.data, args.out, test_size=args.test_size, fraction=args.fraction, seed=args.seed)
    print(f"wrote {args.out}: {report.blanked_rows} of {report.train_rows} training rows keep only "
          f"{', '.join(report.kept_points)}; {len(report.val_people)} validation and {len(report.test_people)} test "
          f"people stay complete ({report.rows} rows in all; the people are listed in {args.out}.report.json)")
    return 0


def _points68(args) -> int:
    from trainer.points68 import make_sidecar

    path = make_sidecar(args.data, args.frames, args.csv)
    print(f"wrote {path}")
    return 0


def config_from_args(args):
    """The RecipeConfig a new run gets: the preset, then the --config file's fields, then the options given."""
    from trainer.config import config_for

    try:
        fields = json.loads(Path(args.config).read_text()) if args.config else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"{args.config} is not valid JSON ({exc}).") from None
    if isinstance(fields, dict) and isinstance(fields.get("config"), dict):  # a model card: train what it was trained by
        fields = fields["config"]
    if not isinstance(fields, dict):
        raise ValueError(f"{args.config} holds no JSON object of RecipeConfig fields.")
    augment = fields.pop("augment", None)
    fields.update({k: v for k, v in dict(data=args.data, widths=args.widths, epochs_per_stage=args.epochs,
                                         test_size=args.test_size, strategy=args.strategy, frames=args.frames,
                                         pose_balance=args.pose_balance, init_from=args.init_from,
                                         loss=args.loss, head=args.head, mixed_precision=args.mixed_precision,
                                         pseudo_label=False if args.no_pseudo else None,
                                         masked_loss=True if args.masked_loss else None,
                                         aux68=args.aux68,
                                         aux68_read15=True if args.aux68_read15 else None).items() if v is not None})
    fields.setdefault("data", str(DEFAULT_DATA))
    # a --config file (a run's config.json, a card's config) is complete for the recipe: laid over the original
    # recipe's defaults, fields it predates stay off, as they were when it was written
    return config_for(args.preset or ("full" if args.config else DEFAULT_PRESET), augment, **fields)


def _train(args) -> int:
    from trainer import distributed
    from trainer import events as ev
    from trainer.config import RecipeConfig
    from trainer.recipe import Cancelled, train

    if (args.workers is None) != (args.worker_index is None):
        raise ValueError("--workers and --worker-index go together (or set TF_CONFIG).")
    if args.workers:
        distributed.configure_cluster(args.workers, args.worker_index)
    cluster = distributed.cluster()
    run_dir = safe_run_dir(args.run or time.strftime("run-%Y%m%d-%H%M%S"))
    if (run_dir / "config.json").is_file() and distributed.is_chief():
        config = RecipeConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
        if (run_dir / "state.json").is_file():
            print(f"resuming {run_dir.name} from {(run_dir / 'state.json').read_text()}", file=sys.stderr)
    else:
        config = config_from_args(args)
    if cluster:
        config = dataclasses.replace(config, strategy="multi_worker")
    if not Path(config.data).is_file():
        hint = " Import the YouTube-faces frames first: python -m trainer import-68 " + SHARED_68_DATASET_ARG \
            if Path(config.data) == DEFAULT_DATA else ""
        raise ValueError(f"No training data at {config.data}.{hint}")
    bus = ev.EventBus([] if args.quiet else [ev.ProgressBar()])
    worker = cluster[1] if cluster else 0
    if not distributed.is_chief():  # only the chief writes the run; this worker's copy is thrown away
        with tempfile.TemporaryDirectory(prefix=f"fks-worker{worker}-") as scratch:
            try:
                train(config, Path(scratch) / run_dir.name, bus)
            except Cancelled:
                print(f"worker {worker} cancelled; rerun the same commands to resume", file=sys.stderr)
                return 3
        print(f"worker {worker} done; worker 0 wrote the run", file=sys.stderr)
        return 0
    try:
        card = train(config, run_dir, bus)
    except Cancelled:
        print(f"cancelled; checkpoints kept in {run_dir}", file=sys.stderr)
        return 3
    print(json.dumps(card.metrics.to_dict(), indent=1))
    return 0


def _evaluate(args) -> int:
    from trainer.evaluate import evaluate_frames

    model = Path(args.model) if args.model else active_model_path()
    if not model.is_file():
        raise ValueError(f"No model file at {model}.")
    if args.rotate:
        return _evaluate_rotated(args, model)
    if args.all_people:
        result = evaluate_frames(model, args.frames, None, flip_average=args.flip_average, recentre=args.recentre)
        print(json.dumps(result, indent=1))
        return 0
    data = read_card(model).data
    groups = {"val": data.val_people, "test": data.test_people}
    results = {}
    for group in ["val", "test"] if args.people == "both" else [args.people]:
        if not groups[group]:
            print(f"error: the model card lists no {group} people; pass --all-people", file=sys.stderr)
            return 2
        results[group] = evaluate_frames(model, args.frames, groups[group], flip_average=args.flip_average,
                                         recentre=args.recentre)
    print(json.dumps(results if len(results) > 1 else next(iter(results.values())), indent=1))
    return 0


def _evaluate_rotated(args, model: Path) -> int:
    from trainer.evaluate import evaluate_rotated, rotated_table

    angles = [float(a) for a in args.rotate.split(",") if a.strip()]
    data = read_card(model).data
    groups = {"val": data.val_people, "test": data.test_people}
    chosen = ["val", "test"] if args.people == "both" else [args.people]
    tables = {}
    for group in (None,) if args.all_people else chosen:
        people = None if group is None else groups[group]
        if group is not None and not people:
            print(f"error: the model card lists no {group} people; pass --all-people", file=sys.stderr)
            return 2
        result = evaluate_rotated(model, args.frames, people, angles, every=args.every)
        name = "all people" if group is None else f"{group} people"
        print(f"{name}, frames turned by 0 and +-{args.rotate} deg (every {args.every}):")
        print(rotated_table(result), flush=True)
        tables[name] = {label: {str(a): r for a, r in by.items()} for label, by in result.items()}
    print(json.dumps(tables, indent=1))
    return 0


def _ship(args) -> int:
    from core.paths import SHIPPED_MODEL
    from trainer.ship import ship

    card = ship(args.run, args.frames, target=Path(args.to) if args.to else SHIPPED_MODEL, locator_run=args.locator)
    print(json.dumps({"inference": card.to_dict().get("inference"), "end_to_end": card.end_to_end.to_dict()}, indent=1))
    return 0


def _train_verifier(args) -> int:
    from core.detector import RollSearch
    from trainer import events as ev
    from trainer import verifier as v
    from trainer.cards import command_line

    roll = RollSearch() if args.turned else None
    mined_path = Path(args.mined or Path("data") / ("verifier-mined-turned.npz" if roll else "verifier-mined.npz"))
    if args.sheets:
        mined = v.MinedCrops.load(mined_path) if mined_path.is_file() else v.mine(args.frames, mined_path, roll=roll)
        sheets = v.contact_sheets(mined, v.is_hard_negative(mined), Path(args.sheets))
        print(f"wrote {len(sheets)} contact sheets of hard negatives to {args.sheets}")
        return 0
    config = v.VerifierConfig()
    if args.epochs:
        config = dataclasses.replace(config, epochs=args.epochs)
    if args.contrast_norm:
        config = dataclasses.replace(config, contrast_norm=True)
    excluded = frozenset(Path(args.exclude_people).read_text().split()) if args.exclude_people else frozenset()
    v.train_verifier(args.frames, args.split_from or SHIPPED_MODEL, args.out or SHIPPED_VERIFIER, mined_path, config,
                     log=lambda line: print(line, file=sys.stderr, flush=True), command=command_line(),
                     bus=ev.EventBus([ev.ProgressBar()]), roll=roll, exclude_people=excluded)
    return 0


def _phantoms(args) -> int:
    from core.pipeline import FacePipeline
    from trainer import verifier as v

    summary = read_card(SHIPPED_MODEL).data
    people = set((summary.val_people if args.people == "val" else summary.test_people) or [])
    if not people:
        raise ValueError(f"the shipped model's card lists no {args.people} people")
    pipeline = FacePipeline(SHIPPED_MODEL, verifier=False if args.no_verifier else None)
    report = v.phantom_report(pipeline, args.frames, people)
    if args.sheets:
        v.extra_box_sheets(report, args.frames, Path(args.sheets))
    print(json.dumps({**report.summary(), "verifier": pipeline.verifier is not None,
                      "phantom_frame_names": report.phantom_frames, "extra_boxes": report.extra_boxes}, indent=1))
    return 0


def _export(args) -> int:
    from trainer.archive import export_archive

    members = export_archive(args.run, args.out)
    print(f"wrote {args.out}: {', '.join(members)}")
    return 0


def _import_model(args) -> int:
    from trainer.archive import import_archive

    path = import_archive(args.archive, args.run)
    print(f"imported as run {path.name}; make it the app's model with: python -m trainer activate {path.name}")
    return 0


def _ensemble(args) -> int:
    from trainer.ensemble import ensemble

    ensemble(args.members, args.run)
    print(f"wrote run {args.run} (the mean of {', '.join(args.members)}); measure it with: python -m trainer "
          f"evaluate --model {Path(runs_dir()) / args.run / 'model.keras'} --frames FRAMES, or ship it")
    return 0


def _activate(args) -> int:
    from trainer.export import ensure_onnx_twin

    ensure_onnx_twin(SHIPPED_MODEL if args.run == SHIPPED_NAME else safe_run_dir(args.run) / "model.keras")
    path = activate(args.run)
    print(f"active model: {path}")
    return 0


def _twin(args) -> int:
    from trainer.export import ensure_onnx_twin

    for model in map(Path, args.models):
        made = ensure_onnx_twin(model)
        print(f"{onnx_path_for(model)}: {'exported' if made else 'already made from these weights'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
