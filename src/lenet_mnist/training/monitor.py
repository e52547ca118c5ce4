"""Watching the test split during training: ``val_`` metrics, and stopping at a target.

:class:`TargetAccuracy` is the one validation of every recipe: it evaluates the test
split with one compiled function at every epoch's end (adding ``val_accuracy`` and
``val_loss`` to the epoch's logs, so to ``History``) and, with a target, also every few
steps late in training, stopping as soon as the target is reached.
"""

from __future__ import annotations

import time
from typing import Any, Final

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

# Defined with the other bounds (importable without TensorFlow); re-exported here.
from lenet_mnist.training.limits import check_target_accuracy
from lenet_mnist.training.multiworker import agree

__all__ = ["TargetAccuracy", "check_target_accuracy"]

# Test images per call of the compiled evaluator: ~1,000 keeps a layer's activations
# near the CPU's caches (1.4-1.8x faster than 4,096 for predict_digits here), and
# 10,000 / 1,000 gives equal chunks, so one trace.
_EVAL_CHUNK: Final = 1000


class _TestEvaluator:
    """Accuracy and mean cross-entropy on a fixed test split, from one compiled function."""

    def __init__(self, model: keras.Model, images: npt.NDArray[np.float32], labels: Any) -> None:
        self._chunks = [
            (
                tf.convert_to_tensor(images[start : start + _EVAL_CHUNK], tf.float32),
                tf.convert_to_tensor(np.asarray(labels[start : start + _EVAL_CHUNK]), tf.int32),
            )
            for start in range(0, images.shape[0], _EVAL_CHUNK)
        ]
        self._count = int(images.shape[0])

        @tf.function(  # type: ignore[untyped-decorator]
            input_signature=[
                tf.TensorSpec((None, 28, 28, 1), tf.float32),
                tf.TensorSpec((None,), tf.int32),
            ]
        )
        def score(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            logits = tf.cast(model(x, training=False), tf.float32)
            hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, tf.int32), y), tf.int32))
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            return hits, tf.reduce_sum(losses)

        self._score = score

    def __call__(self) -> tuple[float, float]:
        hits, loss = 0, 0.0
        for x, y in self._chunks:
            h, s = self._score(x, y)
            hits += int(h)
            loss += float(s)
        return hits / self._count, loss / self._count


class TargetAccuracy(keras.callbacks.Callback):  # type: ignore[misc]
    """Evaluate the test split during training and stop once it reaches a target.

    Every epoch's end adds ``val_accuracy`` and ``val_loss`` to the epoch's logs (so
    to ``History``). With a ``target``, training stops at the first evaluation whose
    accuracy is at least ``target``; between epoch ends it also evaluates every
    ``every`` steps once ``start_step`` steps are done (``every`` 0: epoch ends only).
    With Keras's ``steps_per_execution`` > 1 it can only look at the ends of groups
    of steps: it evaluates at the first group end at or after each multiple of
    ``every``.

    Under a multi-worker strategy (``strategy``) every worker evaluates the whole test
    split on its own copy of the weights, and the results are averaged over the
    workers (a collective call at the same step everywhere), so every worker takes the
    same stop decision at the same step.

    Attributes:
        evaluations: ``(step, accuracy)`` of every evaluation of the test split so
            far, in order (``step`` counts the run's gradient steps from 0).
        reached: ``None`` until the target is reached, then ``(step, accuracy,
            seconds)``: the global step, the test accuracy and the wall time since
            training began.
    """

    def __init__(
        self,
        images: npt.NDArray[np.float32],
        labels: Any,
        *,
        target: float | None = None,
        every: int = 0,
        start_step: int = 0,
        strategy: tf.distribute.Strategy | None = None,
    ) -> None:
        super().__init__()
        self._strategy = strategy
        self._images, self._labels = images, labels
        self._evaluate: _TestEvaluator | None = None
        self.target = target
        self.every = every
        self.start_step = start_step
        self.reached: tuple[int, float, float] | None = None
        self.evaluations: list[tuple[int, float]] = []
        self._step = 0
        self._first_iteration = 0
        self._start = 0.0
        self._last: tuple[int, float, float] | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Start the clock and compile the evaluator for this model."""
        self._start = time.perf_counter()
        self._step = 0
        self._first_iteration = int(self.model.optimizer.iterations.numpy())
        self._evaluate = _TestEvaluator(self.model, self._images, self._labels)

    def _check(self) -> tuple[float, float]:
        if self._last is not None and self._last[0] == self._step:
            return self._last[1], self._last[2]
        if self._evaluate is None:
            raise RuntimeError("TargetAccuracy was used outside model.fit, got no model")
        accuracy, loss = agree(self._strategy, self._evaluate())
        self._last = (self._step, accuracy, loss)
        self.evaluations.append((self._step, accuracy))
        if self.target is not None and self.reached is None and accuracy >= self.target:
            self.reached = (self._step, accuracy, time.perf_counter() - self._start)
            self.model.stop_training = True
        return accuracy, loss

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Count the steps; evaluate when a multiple of ``every`` was passed."""
        # One call may stand for a group of steps (steps_per_execution), and Keras's
        # ``batch`` then counts the last group of an epoch as full even when it is
        # not: the optimizer's own counter is exact.
        previous = self._step
        self._step = int(self.model.optimizer.iterations.numpy()) - self._first_iteration
        if (
            self.target is not None
            and self.every
            and self._step >= self.start_step
            and self._step // self.every > previous // self.every
        ):
            self._check()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Evaluate (unless this step already was) and add the ``val_`` entries to ``logs``."""
        accuracy, loss = self._check()
        if logs is not None:
            logs["val_accuracy"] = accuracy
            logs["val_loss"] = loss
