"""The training loop of ``--distribute multi-worker``: a custom step instead of ``model.fit``.

Keras 3.15's ``model.fit`` cannot train under ``MultiWorkerMirroredStrategy``
with more than one worker (keras-team/keras#20585, still open):

- ``_maybe_symbolic_build`` passes the whole (x, y) batch, a nest of
  ``PerReplica`` values, to ``strategy.reduce``, which with more than one
  worker sends it to ``CollectiveAllReduce.reduce`` and fails with
  "Attempt to convert a value (PerReplica...) ... to a Tensor";
- past that, ``reduce_per_replica`` reduces the scalar logs with
  ``strategy.reduce("MEAN", v, axis=0)``, which fails on 0-d tensors
  ("Invalid reduction dimension 0 for input with 0 dimensions").

This loop uses only public ``tf.distribute`` API: each step runs on every
replica with ``strategy.run``, the optimizer all-reduces the gradients, and
the sums of loss, correct predictions and examples are all-reduced, so every
worker sees the same epoch logs and takes the same early-stopping decision.
``--batch-size`` is the global batch, split across the workers.

The run's callback (``checkpoints.make_callback``) is driven by hand, so
checkpoints, history and early stopping work as with ``model.fit``.
"""
from __future__ import annotations

from typing import Any

from ._tf import import_keras, import_tf


def _sums(loss_fn: Any, y: Any, probs: Any) -> tuple[Any, Any, Any]:
    tf = import_tf()
    per_example = loss_fn(y, probs)
    hits = tf.equal(tf.argmax(probs, axis=-1, output_type=tf.int64), tf.cast(tf.reshape(y, [-1]), tf.int64))
    return per_example, tf.reduce_sum(tf.cast(hits, tf.float32)), tf.cast(tf.shape(per_example)[0], tf.float32)


def make_steps(model: Any, strategy: Any) -> tuple[Any, Any]:
    """``(train_step, test_step)``: tf.functions over one distributed batch -> [loss sum, correct, count]."""
    tf = import_tf()
    keras = import_keras()
    loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)

    def replica_train(x: Any, y: Any) -> Any:
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            per_example, correct, count = _sums(loss_fn, y, probs)
            loss = tf.nn.compute_average_loss(per_example)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(loss, model.trainable_variables)
        model.optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return tf.stack([tf.reduce_sum(per_example), correct, count])

    def replica_test(x: Any, y: Any) -> Any:
        per_example, correct, count = _sums(loss_fn, y, model(x, training=False))
        return tf.stack([tf.reduce_sum(per_example), correct, count])

    @tf.function
    def train_step(batch: Any) -> Any:
        return strategy.reduce("SUM", strategy.run(replica_train, args=batch), axis=None)

    @tf.function
    def test_step(batch: Any) -> Any:
        return strategy.reduce("SUM", strategy.run(replica_test, args=batch), axis=None)

    return train_step, test_step


def _run_epoch(step: Any, dataset: Any, callback: Any = None, reporter: Any = None) -> tuple[float, float]:
    import numpy as np

    total = np.zeros(3)
    for batch_index, batch in enumerate(dataset):
        total += step(batch).numpy()
        if callback is not None:
            callback.on_train_batch_end(batch_index, {"loss": total[0] / max(total[2], 1.0)})
        if reporter is not None:
            reporter.beat()
    count = max(total[2], 1.0)
    return float(total[0] / count), float(total[1] / count)


def fit_distributed(model: Any, strategy: Any, train_ds: Any, val_ds: Any, initial_epoch: int, epochs: int,
                    callback: Any, reporter: Any = None) -> None:
    """``model.fit(train_ds, validation_data=val_ds, initial_epoch=..., epochs=..., callbacks=[callback])``."""
    train_step, test_step = make_steps(model, strategy)
    dist_train = strategy.experimental_distribute_dataset(train_ds)
    dist_val = strategy.experimental_distribute_dataset(val_ds)
    callback.set_model(model)
    callback.set_params({"epochs": epochs, "steps": None, "verbose": 0})
    model.stop_training = False
    for epoch in range(initial_epoch, epochs):
        callback.on_epoch_begin(epoch)
        loss, acc = _run_epoch(train_step, dist_train, callback, reporter)
        val_loss, val_acc = _run_epoch(test_step, dist_val, None, reporter)
        callback.on_epoch_end(epoch, {"loss": loss, "accuracy": acc, "val_loss": val_loss, "val_accuracy": val_acc})
        if reporter is not None:
            reporter.beat(epoch + 1)
        if model.stop_training:
            break
