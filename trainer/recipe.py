"""The training recipe: MSE on normalised coordinates with Adam, through stages of
learning rate x batch size, then pseudo-labeling and a final cycle on the complete rows.
RecipeConfig's defaults are that original recipe; its levers (loss, head, bfloat16, augmentation) are
off there, and trainer.presets names the configurations over it ("studio" turns them on; "adapt", the
default, starts from the active model with them; README, "Training levers").

Stages (defaults = the original recipe):
  main:   lr in (1e-3, 1e-4, 1e-5) x batch in (32, 64, 128), 15 epochs each, complete rows;
  pseudo: the model fills only the missing keypoints of incomplete rows; training continues on
          complete + pseudo-labelled rows (augmented) for `pseudo_stages`;
  final:  once more on the original complete rows for `final_stages`.
Pseudo/final stages are skipped (with an event saying so) when the data has no incomplete rows.

A run is a folder (trainer.runs): it checkpoints after every epoch and resumes from the last
completed epoch; the final model is written atomically and never replaces the active model.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from core.card import ModelCard
from core.model import denormalise_keypoints, normalise_keypoints, to_model_input
from core.schema import CROP_HALF, KEYPOINT_NAMES, NUM_KEYPOINTS
from trainer import distributed
from trainer import events as ev
from trainer.architecture import AUX68_OUTPUT, build_model, inference_copy
from trainer.augment import AugmentConfig, augment_batch
from trainer.cards import check_parent, run_card
from trainer.config import RecipeConfig, Stage, config_for  # noqa: F401  config_for: callers of the recipe use it
from trainer.data import COPY_MARK, KeypointData, read_kaggle_csv, split_indices
from trainer.evaluate import evaluate_frames
from trainer.export import load_keras_model, save_model
from trainer.losses import make_loss, masked_loss_class, masked_mse_metric, wing_loss_class
from trainer.points68 import attach as attach_points68
from trainer.precision import resolve as resolve_precision
from trainer.runs import Run, RunStateError
from trainer.sampling import pose_balanced_probabilities

# Keras/TF are imported inside functions: `python -m trainer --help` stays fast.


class Cancelled(Exception):
    """The run was asked to stop (cancel file or SIGTERM); checkpoints are kept."""


class Diverged(RuntimeError):
    """The loss became NaN or infinite: the run fails, its last good checkpoint stays, no model is written."""


@dataclass
class Split:
    train: KeypointData
    val: KeypointData
    test: KeypointData
    incomplete: KeypointData


def make_split(data: KeypointData, config: RecipeConfig) -> Split:
    """Test and validation come from complete rows, by person when the data has person ids.

    With person ids, people are drawn over all their rows, complete or not, so blanking labels of training
    people (trainer.partial) leaves the split as it was. Incomplete rows of test/validation people are left
    out, so no face of a held-out person is trained on. Jitter copies (trainer.importer) follow their frame
    into training and are never validated or tested on.
    """
    grouped = data.groups is not None
    copies = data.subset(np.flatnonzero(data.is_copy & data.complete))
    full = data.subset(np.flatnonzero(~data.is_copy & (data.complete | grouped)))
    rest, test = split_indices(len(full), config.test_size if config.test_size < 1 else int(config.test_size),
                               config.seed, full.groups)
    rest_data = full.subset(rest)
    train, val = split_indices(len(rest_data), float(config.val_fraction), config.seed + 1, rest_data.groups)
    def complete_of(d: KeypointData) -> KeypointData:
        return d.subset(np.flatnonzero(d.complete))

    train_data = complete_of(rest_data.subset(train))
    if len(copies):
        sources = np.array([str(f).split(COPY_MARK)[0] for f in copies.source_frames])
        train_frames = rest_data.subset(train).source_frames
        train_data = KeypointData.concat([train_data, copies.subset(np.flatnonzero(np.isin(sources, train_frames)))])
    incomplete = data.subset(np.flatnonzero(~data.complete))
    if grouped:
        held_out = set(full.people[test]) | set(rest_data.people[val])
        incomplete = incomplete.subset(np.flatnonzero(~np.isin(incomplete.people, list(held_out))))
    return Split(train_data, complete_of(rest_data.subset(val)), complete_of(full.subset(test)), incomplete)


def augmented_batches(data: KeypointData, batch_size: int, augment: AugmentConfig, seed: int,
                      probabilities: np.ndarray | None = None, aux68: bool = False):
    """A keras PyDataset of freshly augmented, shuffled batches (what fit() trains on).

    With `probabilities` (one per row), each epoch draws len(data) rows with replacement by them
    instead of taking every row once. With `aux68` the targets are the model's two outputs: the 15 points
    and the rows' 68 iBUG points (data.points68), moved by the same augmentation.
    """
    import keras

    class AugmentedBatches(keras.utils.PyDataset):
        """Shuffled, freshly augmented batches every epoch (trainer.augment on uint8 faces)."""

        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.draw_order()

        def draw_order(self) -> np.ndarray:
            if probabilities is None:
                return self.rng.permutation(len(data))
            return self.rng.choice(len(data), len(data), p=probabilities)

        def __len__(self) -> int:
            return int(np.ceil(len(data) / batch_size))

        def __getitem__(self, i: int):
            idx = self.order[i * batch_size:(i + 1) * batch_size]
            if not aux68:
                images, keypoints = augment_batch(data.images[idx], data.keypoints[idx], self.rng, augment)
                return to_model_input(images), normalise_keypoints(keypoints)
            assert data.points68 is not None
            both = np.concatenate([data.keypoints[idx], data.points68[idx]], axis=1)
            images, moved = augment_batch(data.images[idx], both, self.rng, augment)
            return to_model_input(images), targets(moved[:, :NUM_KEYPOINTS], moved[:, NUM_KEYPOINTS:])

        def on_epoch_end(self) -> None:
            self.order = self.draw_order()

    return AugmentedBatches()


def targets(keypoints: np.ndarray, points68: np.ndarray | None) -> np.ndarray | dict[str, np.ndarray]:
    """What fit() compares the outputs with: the normalised 15 points, and the 68 for a model with the
    auxiliary head (trainer.architecture.AUX68_OUTPUT)."""
    if points68 is None:
        return normalise_keypoints(keypoints)
    k68 = np.asarray(points68, dtype=np.float32)
    return {"keypoints": normalise_keypoints(keypoints), AUX68_OUTPUT: ((k68 - CROP_HALF) / CROP_HALF).reshape(len(k68), -1)}


def _first_output(outputs):
    """The 15-point output of a model with or without the auxiliary head."""
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def predict_keypoints(model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(N, 96, 96) uint8 -> (N, 15, 2) crop px, batched (evaluation only; inference uses core.model)."""
    out = [_first_output(model(to_model_input(images[i:i + batch_size]), training=False)).numpy()
           for i in range(0, len(images), batch_size)]
    return denormalise_keypoints(np.concatenate(out)) if out else np.zeros((0, 15, 2))


def crop_metrics(model, data: KeypointData) -> dict:
    """RMSE in crop pixels (Kaggle's measure), overall and per keypoint."""
    if len(data) == 0:
        return {}
    err = predict_keypoints(model, data.images) - data.keypoints
    per_kp = np.sqrt(np.nanmean(err**2, axis=(0, 2)))
    return {"test_rmse_px": round(float(np.sqrt(np.nanmean(err**2))), 4),
            "test_rows": len(data),
            "per_keypoint_rmse_px": {n: round(float(v), 4) for n, v in zip(KEYPOINT_NAMES, per_kp)}}


def fill_pseudo_labels(model, incomplete: KeypointData) -> tuple[KeypointData, int]:
    """Fill only the missing keypoints of incomplete rows with the model's predictions."""
    if len(incomplete) == 0:
        return incomplete, 0
    predicted = predict_keypoints(model, incomplete.images)
    missing = np.isnan(incomplete.keypoints)
    filled = np.where(missing, predicted, incomplete.keypoints).astype(np.float32)
    return (KeypointData(incomplete.images, filled, incomplete.groups, incomplete.frames, incomplete.points68),
            int(missing.sum()))


def stage_rows(stage: Stage, split: Split, pseudo: KeypointData | None, masked_loss: bool) -> KeypointData:
    """What a stage trains on: complete rows; pseudo stages add the pseudo-labelled rows; with the masked loss
    the incomplete rows join every other stage as they are (their missing points teach nothing)."""
    if stage.phase == "pseudo" and pseudo is not None:
        return KeypointData.concat([split.train, pseudo])
    if masked_loss and len(split.incomplete):
        return KeypointData.concat([split.train, split.incomplete])
    return split.train


def start_from_weights(model, init_from: str | os.PathLike) -> None:
    """Copy a trained model's weights into `model` (fine-tuning), refusing what would spoil the test
    (trainer.cards.check_parent)."""
    parent = load_keras_model(init_from)
    if [w.shape for w in parent.get_weights()] != [w.shape for w in model.get_weights()]:
        raise ValueError(f"{Path(init_from).name} has another architecture than this run; pass the --widths and "
                         "--head it was trained with.")
    model.set_weights(parent.get_weights())


def _keras_bridge(bus: ev.EventBus, stage: Stage, batches: int, on_epoch_done: Callable[[ev.EpochEnd], None],
                  should_stop: Callable[[], bool]):
    """The keras Callback that turns fit() progress into events, checkpoints and cancel checks."""
    import keras

    class Bridge(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.started = time.time()
            self.steps = 0

        def on_train_batch_end(self, batch, logs=None):
            if should_stop():
                self.model.stop_training = True
                raise Cancelled("cancelled by request")
            self.steps += 1
            bus.emit(ev.BatchProgress(stage=stage.index, epoch=self.epoch, batch=batch + 1, batches=batches))

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            loss, val = float(logs.get("loss", np.nan)), float(logs.get("val_loss", np.nan))
            if not np.isfinite(loss) or ("val_loss" in logs and not np.isfinite(val)):
                # Before the checkpoint: the last good epoch stays the resume point.
                raise Diverged(f"the loss became {loss:g} (validation {val:g}) in stage '{stage.name}', epoch "
                               f"{epoch + 1}; the weights are broken, so no model was written. Check the data's "
                               "keypoints or lower the learning rate.")
            # the 15 points' MSE (keypoints_mse beside the 68-point head); older runs: loss was MSE
            mse = float(logs.get("mse", logs.get("keypoints_mse", loss)))
            val_mse = float(logs.get("val_mse", logs.get("val_keypoints_mse", val)))
            on_epoch_done(ev.EpochEnd(
                stage=stage.index, epoch=epoch, epochs=stage.epochs, loss=loss, val_loss=val,
                rmse_px=float(np.sqrt(mse) * CROP_HALF), val_rmse_px=float(np.sqrt(val_mse) * CROP_HALF),
                lr=stage.lr, batch_size=stage.batch, steps=self.steps, epoch_s=round(time.time() - self.started, 2)))

    return Bridge()


def train(config: RecipeConfig, run_dir: str | os.PathLike, bus: ev.EventBus | None = None,
          cancel_event: threading.Event | None = None) -> ModelCard:
    """Run (or resume) the recipe in `run_dir`; returns the model card. Raises Cancelled on cancel."""
    run = Run(Path(run_dir))
    run.lock_writer()  # before anything is written: a second writer changes nothing in the folder
    bus = bus or ev.EventBus()
    bus.subscribe(ev.JsonlLog(run.events_path))
    cancel_event = cancel_event or threading.Event()
    should_stop = lambda: cancel_event.is_set() or run.cancel_requested()  # noqa: E731
    previous = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    if previous is not None:
        signal.signal(signal.SIGTERM, lambda *_: cancel_event.set())
    try:
        return _train(config, run, bus, should_stop)
    except Cancelled as exc:
        resume = run.state()
        bus.emit(ev.RunCancelled(message=str(exc), stage=resume.get("stage", 0), epoch=resume.get("epoch", 0)))
        raise
    except Exception as exc:
        bus.emit(ev.RunError(message=f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        run.unlock_writer()


def _train(config: RecipeConfig, run, bus: ev.EventBus, should_stop: Callable[[], bool]) -> ModelCard:
    import keras

    started = time.time()
    run.cancel_path.unlink(missing_ok=True)  # starting (or resuming) a run means it should run
    # bfloat16 or float32, decided once per run (trainer.precision); a resumed run keeps its first decision
    recorded = run.recorded_precision()
    config = replace(config, precision=recorded or resolve_precision(config.mixed_precision).to_dict())
    run.write_config(config)
    if not recorded:  # a config.json written before the run started (the Training page's) gets the choice too
        run.record_precision(config.precision)
    run.write_job()
    data = read_kaggle_csv(config.data)
    if config.aux68:
        data = attach_points68(data, config.data)
    split = make_split(data, config)
    if len(split.train) == 0:
        raise ValueError("No complete training rows left after the test/validation split.")
    stages = config.stages(has_incomplete=len(split.incomplete) > 0)
    state = run.resume_point(stages)
    strategy = distributed.make_strategy(config.strategy)
    multi_worker = config.strategy == "multi_worker"
    chief = distributed.is_chief()
    if config.init_from and chief and not run.checkpoint_path.is_file():  # a resumed run has its weights already
        check_parent(config, split)
    wing_loss_class(), masked_loss_class(), masked_mse_metric()  # registered before a checkpoint using them is loaded
    with strategy.scope():
        if run.checkpoint_path.is_file() and not multi_worker:
            try:
                model = keras.models.load_model(run.checkpoint_path, safe_mode=True, compile=True)
            except Exception as exc:  # keras raises many types (even FileNotFoundError) for a damaged file
                raise RunStateError(f"Run '{run.path.name}': checkpoint.keras is damaged ({type(exc).__name__}), so "
                                    f"the run cannot resume; delete runs/{run.path.name}/state.json and "
                                    "checkpoint.keras to train it from the start, or use a new run name.") from None
        else:
            keras.utils.set_random_seed(config.seed)
            model = build_model(config.widths, config.dropout, config.head, bool(config.precision["mixed_precision"]),
                                aux68=config.aux68 > 0, read15=config.aux68_read15)
            if config.init_from and chief:  # the other workers take the chief's weights below
                start_from_weights(model, config.init_from)
            # "mse" is also a metric: the progress events report RMSE in crop px whatever the loss
            mse = (keras.metrics.MeanMetricWrapper(masked_mse_metric(), name="mse") if config.masked_loss
                   else keras.metrics.MeanSquaredError(name="mse"))
            if config.aux68:  # the 68 points are every row's, so their loss is never masked
                model.compile(optimizer=keras.optimizers.Adam(config.learning_rates[0]),
                              loss={"keypoints": make_loss(config.loss, config.masked_loss),
                                    AUX68_OUTPUT: make_loss(config.loss)},
                              loss_weights={"keypoints": 1.0, AUX68_OUTPUT: float(config.aux68)},
                              metrics={"keypoints": [mse]})
            else:
                model.compile(optimizer=keras.optimizers.Adam(config.learning_rates[0]),
                              loss=make_loss(config.loss, config.masked_loss), metrics=[mse])
        if multi_worker:
            model.optimizer.build(model.trainable_variables)
    if multi_worker:  # every worker continues from the chief's checkpoint and resume point
        checkpoint = run.checkpoint_path if run.checkpoint_path.is_file() and chief else None
        state = {**state, **distributed.sync_from_chief(strategy, model, state, config.to_dict(), checkpoint)}
    workers, worker_index = distributed.cluster() or ([], 0)
    bus.emit(ev.RunStart(run_name=run.path.name, data=config.data, rows=len(data), train_rows=len(split.train),
                         val_rows=len(split.val), test_rows=len(split.test), incomplete_rows=len(split.incomplete),
                         stages=len(stages), stage_names=[s.name for s in stages], resumed_from=state,
                         replicas_in_sync=strategy.num_replicas_in_sync, workers=workers, worker_index=worker_index,
                         precision=config.precision, masked_loss=config.masked_loss))

    pseudo = run.load_pseudo_labels()
    aux68 = config.aux68 > 0
    val_xy = ((to_model_input(split.val.images), targets(split.val.keypoints, split.val.points68 if aux68 else None))
              if len(split.val) else None)
    for stage in stages:
        if stage.index < state["stage"]:
            continue
        first_epoch = state["epoch"] if stage.index == state["stage"] else 0
        if stage.phase == "pseudo" and pseudo is None:
            labelling = time.time()
            pseudo, filled = fill_pseudo_labels(model, split.incomplete)
            run.save_pseudo_labels(pseudo, np.isnan(split.incomplete.keypoints).any(axis=2))
            previous = stages[stage.index - 1] if stage.index else None
            bus.emit(ev.PseudoLabels(rows=len(pseudo), filled_values=filled, complete_rows=len(split.train),
                                     model=f"the model after stage {stage.index} ({previous.name})" if previous
                                     else "the starting model", labelling_s=round(time.time() - labelling, 1)))
        train_data = stage_rows(stage, split, pseudo, config.masked_loss)
        batches = int(np.ceil(len(train_data) / stage.batch))
        bus.emit(ev.StageStart(stage=stage.index, stages=len(stages), name=stage.name, phase=stage.phase,
                               lr=stage.lr, batch_size=stage.batch, epochs=stage.epochs, first_epoch=first_epoch,
                               rows=len(train_data)))
        model.optimizer.learning_rate.assign(stage.lr)

        def epoch_done(event: ev.EpochEnd, stage: Stage = stage) -> None:
            run.save_checkpoint(model, stage.index, event.epoch + 1, len(stages))
            bus.emit(event)

        bridge = _keras_bridge(bus, stage, batches, epoch_done, should_stop)
        sequence = augmented_batches(train_data, stage.batch, config.augment, config.seed * 1000 + stage.index,
                                     pose_balanced_probabilities(train_data.keypoints, config.pose_balance), aux68)
        if first_epoch < stage.epochs and multi_worker:
            distributed.fit(model, strategy, sequence, stage.epochs, first_epoch, val_xy, [bridge])
        elif first_epoch < stage.epochs:
            model.fit(sequence, epochs=stage.epochs, initial_epoch=first_epoch, validation_data=val_xy,
                      callbacks=[keras.callbacks.TerminateOnNaN(), bridge], verbose=0)
        run.save_checkpoint(model, stage.index + 1, 0, len(stages))
        bus.emit(ev.StageEnd(stage=stage.index, name=stage.name))

    metrics = crop_metrics(model, split.test)
    run.save_test_faces(split.test.images[:8], split.test.keypoints[:8], predict_keypoints(model, split.test.images[:8]))
    save_model(inference_copy(model), run.model_path)
    if config.frames and split.test.groups is not None and chief:
        metrics["end_to_end"] = evaluate_frames(run.model_path, config.frames, people=sorted(set(split.test.groups)))
    wall_s = run.wall_s(started, time.time())  # every segment, not only this one after a resume
    card = run.finish(run_card(run.path.name, run.model_path.name, config, data, split, metrics, wall_s,
                               distribution={"strategy": config.strategy,
                                             "replicas_in_sync": strategy.num_replicas_in_sync, "workers": workers}))
    bus.emit(ev.RunEnd(model_path=str(run.model_path), metrics=metrics, wall_s=round(wall_s, 1)))
    return card
