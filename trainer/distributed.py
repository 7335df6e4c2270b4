"""Training on several machines with tf.distribute.MultiWorkerMirroredStrategy (TF_CONFIG).

Every machine runs the same `python -m trainer train ...` command with its own `--worker-index`
(or its own TF_CONFIG). Each worker holds a full copy of the model; every step, each one takes its
share of the recipe's batch (the batch is the global batch, as on one machine) and the strategy
all-reduces the gradients, so all copies stay equal. Worker 0 is the chief: it alone writes the run
folder; the others write theirs to a temporary folder that is removed (what TensorFlow's multi-worker
guide recommends for checkpoints). On start or resume every worker takes the chief's weights,
optimizer state and resume point, so only the chief's machine needs the run folder.

Keras 3.15's `Model.fit` cannot run under this strategy (it reduces scalar logs along axis 0 and
fails: keras-team/keras#20585), so the epochs here are a short loop that calls the strategy the way
TensorFlow's custom-training-loop guide does, and drives the same keras callbacks as fit() would.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

#: A worker waits this long for its peers in one collective, then fails instead of hanging forever.
COLLECTIVE_TIMEOUT_S = 300
ADDRESS = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
#: Config fields that may differ between machines without changing what is trained: local paths, and the
#: compute precision each machine chose for its CPU (trainer.precision; the weights stay float32 either way).
LOCAL_FIELDS = ("data", "frames", "init_from", "precision")


def configure_cluster(workers: str, worker_index: int) -> None:
    """Set TF_CONFIG from `--workers HOST:PORT,HOST:PORT --worker-index I`."""
    addresses = [w.strip() for w in workers.split(",") if w.strip()]
    bad = [a for a in addresses if not ADDRESS.match(a)]
    if bad or len(addresses) < 2:
        raise ValueError(f"--workers needs two or more HOST:PORT addresses separated by commas, got {workers!r}.")
    if not 0 <= worker_index < len(addresses):
        raise ValueError(f"--worker-index must be between 0 and {len(addresses) - 1}, got {worker_index}.")
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": addresses},
                                          "task": {"type": "worker", "index": worker_index}})


def cluster() -> tuple[list[str], int] | None:
    """(every worker's address, this worker's index) from TF_CONFIG; None when it names no cluster."""
    try:
        tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        spec, task = tf_config.get("cluster", {}), tf_config.get("task", {})
        addresses = list(spec.get("chief", [])) + list(spec.get("worker", []))
        index = int(task.get("index", 0)) + (len(spec.get("chief", [])) if task.get("type") == "worker" else 0)
    except (ValueError, TypeError, AttributeError):
        raise ValueError("TF_CONFIG is not valid JSON of the form "
                         '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}.') from None
    return (addresses, index) if addresses else None


def is_chief() -> bool:
    """Worker 0 (or TF_CONFIG's chief task) writes the run folder; True on one machine."""
    found = cluster()
    return found is None or found[1] == 0


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy a RecipeConfig names: none, mirrored (local devices) or multi_worker."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_S)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    return tf.distribute.get_strategy()


def config_digest(config: dict) -> int:
    """A number that differs when two workers were given different recipes (local paths aside)."""
    shared = {k: v for k, v in config.items() if k not in LOCAL_FIELDS}
    return int(hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()[:12], 16)


def sync_from_chief(strategy, model: keras.Model, state: dict, config: dict, checkpoint: Path | None = None) -> dict:
    """Give every worker the chief's weights, optimizer state and resume point; refuse differing recipes.

    The chief first copies its `checkpoint` (model + optimizer, loaded outside the strategy: loading
    inside would create variables, a collective the other workers would not join). Replica 0 lives on
    the chief: a sum all-reduce in which only it contributes is a broadcast. Returns the chief's
    {"stage", "epoch"}.
    """
    import keras
    import tensorflow as tf

    variables = list(model.variables) + list(model.optimizer.variables)
    if checkpoint is not None:
        saved = keras.models.load_model(checkpoint, safe_mode=True, compile=True)
        values = list(saved.variables) + list(saved.optimizer.variables)
        if [tuple(v.shape) for v in values] != [tuple(v.shape) for v in variables]:
            raise ValueError(f"{checkpoint.name} does not hold this recipe's model; start a new run.")
        for variable, value in zip(variables, values):
            variable.assign(value.value)
    digest = float(config_digest(config))
    header = tf.constant([state.get("stage", 0), state.get("epoch", 0), digest], tf.float64)

    def chief_values():
        ctx = tf.distribute.get_replica_context()
        keep = tf.cast(tf.equal(ctx.replica_id_in_sync_group, 0), tf.float64)
        return ctx.all_reduce("sum", [header * keep] + [tf.cast(v.value, tf.float64) * keep for v in variables])

    def count_mismatches(mismatch):
        return tf.distribute.get_replica_context().all_reduce("sum", mismatch)

    reduced = strategy.experimental_local_results(tf.function(lambda: strategy.run(chief_values))())[0]
    mismatch = tf.constant(float(reduced[0][2].numpy() != digest), tf.float64)
    differing = strategy.experimental_local_results(
        tf.function(lambda: strategy.run(count_mismatches, args=(mismatch,)))())[0]
    if float(differing.numpy()) > 0:
        raise ValueError("The workers were given different recipes: run the same command on every machine, "
                         "only --worker-index differs.")
    for variable, value in zip(variables, reduced[1:]):
        variable.assign(tf.cast(value, variable.dtype))
    return {"stage": int(reduced[0][0].numpy()), "epoch": int(reduced[0][1].numpy())}


def fit(model: keras.Model, strategy, batches, epochs: int, initial_epoch: int, validation_data,
        callbacks: list) -> None:
    """What `model.fit(batches, epochs=, initial_epoch=, validation_data=, callbacks=)` does, on all workers.

    `batches` yields the recipe's (global) batches in the same order on every worker (same seed);
    each replica trains on its own slice of each one. A batch smaller than the number of replicas is
    skipped everywhere (a replica with no rows would put NaN into batch-norm statistics).
    """
    import keras
    import tensorflow as tf

    replicas = strategy.num_replicas_in_sync
    loss_fn = keras.losses.get(model.loss) if isinstance(model.loss, str) else model.loss
    per_row_loss = loss_fn.call if isinstance(loss_fn, keras.losses.Loss) else loss_fn  # unreduced, one per row

    def replica_step(x, y, global_rows):
        with tf.GradientTape() as tape:
            predicted = model(x, training=True)
            loss = tf.nn.compute_average_loss(per_row_loss(y, predicted), global_batch_size=global_rows)
        model.optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        squared = tf.reduce_mean(tf.square(y - tf.cast(predicted, y.dtype)), axis=-1)
        return loss, tf.nn.compute_average_loss(squared, global_batch_size=global_rows)

    @tf.function
    def train_step(x, y, global_rows):
        loss, mse = strategy.run(replica_step, args=(x, y, global_rows))
        return strategy.reduce("SUM", loss, axis=None), strategy.reduce("SUM", mse, axis=None)

    def shard(array: np.ndarray):
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(np.array_split(array, replicas)[ctx.replica_id_in_sync_group]))

    hooks = keras.callbacks.CallbackList(callbacks, model=model)
    for epoch in range(initial_epoch, epochs):
        hooks.on_epoch_begin(epoch)
        losses, squared = [], []
        for i in range(len(batches)):
            x, y = batches[i]
            if len(x) < replicas:
                continue
            loss, mse = train_step(shard(x), shard(y), tf.constant(len(x), tf.int32))
            losses.append(float(loss))
            squared.append(float(mse))
            hooks.on_train_batch_end(i, {"loss": losses[-1]})
        batches.on_epoch_end()
        logs = {"loss": float(np.mean(losses)) if losses else float("nan"),
                "mse": float(np.mean(squared)) if squared else float("nan")}
        if validation_data is not None:  # every worker validates on its own full copy: no collectives
            val_x, val_y = validation_data
            predicted = np.concatenate([model(val_x[j:j + 256], training=False) for j in range(0, len(val_x), 256)])
            logs["val_loss"] = float(np.mean(per_row_loss(val_y, predicted.astype(np.float32))))
            logs["val_mse"] = float(np.mean((predicted - val_y) ** 2))
        hooks.on_epoch_end(epoch, logs)
