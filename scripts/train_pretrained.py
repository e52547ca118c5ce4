"""Train the pretrained model shipped in the package (``lenet_mnist/weights/robust.keras``).

Rerun it to reproduce the shipped weights::

    LENET_MNIST_DATA=/path/to/mnist python scripts/train_pretrained.py

Network: ``build_lenet("robust")`` (198,442 parameters, 0.8 MB as ``.keras``). Recipe:
batch 128, Adam with a one-cycle learning rate (linear warm-up to 3e-3 over the first
epoch, cosine decay to zero), and augmentation on each batch that imitates what real
handwriting looks like after :func:`lenet_mnist.prepare_image`: random affine
transforms (rotation up to 12 degrees, scale 0.85-1.15, shear up to 0.15, shifts up to
2.5 px), random stroke thickness (a blend towards a 3x3 dilation or erosion) and
sometimes a slight blur. The augmentation runs in the input pipeline, not in the model,
so the saved model is a plain stack of Keras layers. Everything is seeded (``--seed``):
shuffling, augmentation (stateless random ops keyed by the batch number) and the
initial weights; a rerun on the same machine and TensorFlow version gives the same
model up to the nondeterminism of multithreaded CPU kernels.

The run that produced the shipped file (TensorFlow 2.21, Keras 3.15, 2 CPU cores shared
with other jobs, load average ~9): 6 epochs, 1,834 s of wall time, 528 s of CPU time
(``/usr/bin/time``), test accuracy 0.9953 (9953/10000), file 875,452 bytes. On an idle
2-core machine expect roughly the CPU time. The file is saved without optimizer state.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from lenet_mnist import build_lenet, load_mnist, save_model
from lenet_mnist.evaluation import evaluate_model

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "src/lenet_mnist/weights/robust.keras"


def _affine(batch: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Random rotation, scale, shear and shift of each image, about the image centre."""
    n = tf.shape(batch)[0]
    seeds = tf.random.experimental.stateless_split(seed, 5)
    angle = tf.random.stateless_uniform([n], seeds[0], -12.0, 12.0) * (math.pi / 180.0)
    scale = tf.random.stateless_uniform([n, 2], seeds[1], 0.85, 1.15)
    # Mostly isotropic scaling: handwriting varies in size more than in aspect ratio.
    sx = scale[:, 0]
    sy = scale[:, 0] * (1.0 + 0.3 * (scale[:, 1] - 1.0))
    shear = tf.random.stateless_uniform([n], seeds[2], -0.15, 0.15)
    shift = tf.random.stateless_uniform([n, 2], seeds[3], -2.5, 2.5)
    cos, sin = tf.cos(angle), tf.sin(angle)
    # Forward map A = R @ Sh @ S; the op wants the inverse (output -> input coordinates).
    a00 = cos * sx
    a01 = (cos * shear - sin) * sy
    a10 = sin * sx
    a11 = (sin * shear + cos) * sy
    det = a00 * a11 - a01 * a10
    i00, i01, i10, i11 = a11 / det, -a01 / det, -a10 / det, a00 / det
    c = 13.5
    tx = c + shift[:, 0]
    ty = c + shift[:, 1]
    # input = inv @ (output - (c + shift)) + c
    b0 = c - (i00 * tx + i01 * ty)
    b1 = c - (i10 * tx + i11 * ty)
    zeros = tf.zeros_like(angle)
    transforms = tf.stack([i00, i01, b0, i10, i11, b1, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=batch,
        transforms=transforms,
        output_shape=tf.constant([28, 28]),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def _thickness_and_blur(batch: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Blend each image towards its dilation or erosion, then sometimes blur it a little."""
    n = tf.shape(batch)[0]
    seeds = tf.random.experimental.stateless_split(seed, 3)
    dilated = tf.nn.max_pool2d(batch, 3, 1, "SAME")
    eroded = -tf.nn.max_pool2d(-batch, 3, 1, "SAME")
    amount = tf.random.stateless_uniform([n, 1, 1, 1], seeds[0], -0.6, 0.9)
    thick = batch + tf.maximum(amount, 0.0) * (dilated - batch)
    thin = batch + tf.maximum(-amount, 0.0) * (eroded - batch)
    out = tf.where(amount >= 0.0, thick, thin)
    kernel = tf.constant([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0
    blurred = tf.nn.conv2d(out, tf.reshape(kernel, [3, 3, 1, 1]), 1, "SAME")
    blur = tf.random.stateless_uniform([n, 1, 1, 1], seeds[1], 0.0, 1.0)
    blur = tf.where(blur < 0.3, blur / 0.3, 0.0)
    out = out + blur * (blurred - out)
    # Renormalize so the darkest ink is 1, as prepare_image's output is.
    peak = tf.reduce_max(out, axis=[1, 2, 3], keepdims=True)
    return tf.clip_by_value(out / tf.maximum(peak, 1e-3), 0.0, 1.0)


def augment(batch: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Augment a ``(B, 28, 28, 1)`` float32 batch in [0, 1]; ``seed`` is a ``[2]`` int tensor."""
    first, second = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    return _affine(_thickness_and_blur(batch, first), second)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="MNIST directory (default: as load_mnist)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps-limit", type=int, default=None, help="timing runs only")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()

    started = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    data = load_mnist(args.data_dir, download=False)
    train_images = data.train_images.astype(np.float32)
    n = len(train_images)
    steps = math.ceil(n / args.batch_size)
    total = steps * args.epochs

    dataset = (
        tf.data.Dataset.from_tensor_slices((train_images, data.train_labels.astype(np.int32)))
        .shuffle(n, seed=args.seed, reshuffle_each_iteration=True)
        .batch(args.batch_size)
        .repeat()
        .enumerate()
        .map(
            lambda i, xy: (augment(xy[0], tf.stack([tf.constant(args.seed, tf.int64), i])), xy[1]),
            num_parallel_calls=2,
            deterministic=True,
        )
        .prefetch(4)
    )

    warmup = steps
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=total - warmup,
        warmup_target=args.learning_rate,
        warmup_steps=warmup,
    )
    model = build_lenet("robust", seed=args.seed)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(
        dataset,
        epochs=args.epochs if args.steps_limit is None else 1,
        steps_per_epoch=steps if args.steps_limit is None else args.steps_limit,
        verbose=2,
    )
    trained = time.perf_counter() - started
    if args.steps_limit is not None:
        print(f"{args.steps_limit} steps in {trained:.1f} s")
        return

    # Ship the weights in a fresh, uncompiled copy: no optimizer state, half the size.
    plain = build_lenet("robust")
    plain.set_weights(model.get_weights())
    report = evaluate_model(plain, data)
    path = save_model(plain, args.output)
    print(
        f"test accuracy {report.accuracy:.4f} ({report.num_images - len(report.misclassified)}"
        f"/{report.num_images}), loss {report.loss:.4f}"
    )
    print(f"saved {path} ({path.stat().st_size:,} bytes); total time {trained:.0f} s")


if __name__ == "__main__":
    main()
