"""Train the pretrained model shipped in the package (``lenet_mnist/weights/robust.keras``).

Rerun it to reproduce the shipped weights (at most an hour on 2 idle cores; see below)::

    LENET_MNIST_DATA=/path/to/mnist python scripts/train_pretrained.py
    LENET_MNIST_DATA=/path/to/mnist python scripts/train_pretrained.py --quick   # smoke test

Data: MNIST's training split only. Every choice is made on a validation split held out
from it (training images 55,000-59,999; the test split is only reported):

1. **Styled digits** (``--styled N``, default 6,000): N training digits drawn the way
   real pictures reach the model -- photos on tinted, unevenly lit paper (some with heavy
   strokes, ``tests/handwriting.py``) and small 8x8/16x16 scans as arrays and enlarged
   (``benchmarks/outside_digits.py``) -- passed through :func:`lenet_mnist.prepare_image`
   and added to the training data with their labels, so the network sees what
   ``prepare_image`` makes of such pictures (e.g. the blocky 8s and 9s of 8x8 scans).
2. **Search**: each candidate of ``CANDIDATES`` (augmentations on or off) trains
   ``--search-epochs`` epochs on training images 0-54,999 (and styled digits made from
   them only) and is scored on the held-out 5,000 (accuracy on the clean digits plus
   accuracy on their styled pictures). The best candidate's model also gives the
   calibration temperature (:func:`lenet_mnist.models.calibration.fit_temperature` on the
   held-out clean digits, which that model has never seen).
3. **Final**: the best candidate trains ``--epochs`` epochs on all 60,000 training images
   (and styled digits made from all of them), is saved without optimizer state, and
   ``weights/robust.json`` gets its temperature and this run's numbers. The MNIST test
   accuracy is printed (reported, never used).

Augmentation, on each batch, from the batch itself (stateless random ops keyed by the
seed and the batch number, so a rerun draws the same): elastic distortion (a random
displacement field smoothed by a Gaussian, Simard et al. 2003), an affine map (rotation,
shear, scale, aspect ratio, shift), stroke-width jitter (a blend towards a 3x3 dilation
or erosion), blur and contrast (a gamma on the ink), then renormalized so the strongest
ink is 1 as :func:`lenet_mnist.prepare_image` makes it. Network: ``build_lenet("robust")``
(198,442 parameters, 0.8 MB as ``.keras``). Optimizer: Adam, batch 128, a one-cycle
learning rate (linear warm-up over the first epoch to ``--learning-rate``, cosine decay
to zero), label smoothing 0.05.

Time: ``--time-steps 100`` measured 0.118 s of CPU time per training step (tracing
included; 0.79 s wall on a machine with a load average of 17). The default run is
about 13,000 steps (3 candidates x 4 epochs x 477 steps, then 14 epochs x 516 steps) plus
about 12,600 ``prepare_image`` calls for the styled digits on 2 processes: roughly 30
minutes of CPU time, so 20-40 minutes of wall time on 2 idle cores -- never measured as
a whole yet. ``--search-epochs 0`` skips the search and trains the first candidate;
``--quick`` (20 steps per fit, 40 styled digits, saved to a temporary directory) only
checks that everything runs: its accuracies are meaningless (batch-norm statistics have
not settled after 20 steps).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from lenet_mnist import build_lenet, load_mnist, predict_digits, save_model  # noqa: E402
from lenet_mnist.evaluation import evaluate_model  # noqa: E402
from lenet_mnist.models.calibration import (  # noqa: E402
    expected_calibration_error,
    fit_temperature,
    softmax,
)

DEFAULT_OUTPUT = ROOT / "src/lenet_mnist/weights/robust.keras"
VALIDATION_FIRST = 55_000


@dataclass(frozen=True)
class Augment:
    """Ranges of the augmentation; 0 switches a part off."""

    elastic_alpha: float = 1.0  # largest spread (std) of the displacement, px
    elastic_sigma: float = 4.0  # smoothing of the field, px
    rotation: float = 12.0  # degrees, +-
    shear: float = 0.2  # +-
    scale: float = 0.12  # 1 +- this
    aspect: float = 0.15  # height/width 1 +- this
    shift: float = 2.0  # px, +-
    stroke_thin: float = 0.6  # blend towards the erosion, up to
    stroke_thick: float = 0.9  # blend towards the dilation, up to
    blur: float = 0.3  # fraction of images blurred
    gamma: float = 0.3  # ink ** exp(+- this)


#: What the search compares (the first is trained when the search is skipped).
CANDIDATES: dict[str, Augment] = {
    "all": Augment(),
    "no-elastic": replace(Augment(), elastic_alpha=0.0),
    "strong-affine": replace(Augment(), rotation=18.0, shear=0.3, scale=0.18, aspect=0.25),
}


# ------------------------------------------------------------------ augmentation


def _gaussian_kernel(sigma: float) -> tf.Tensor:
    radius = max(1, math.ceil(2.5 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return tf.constant(taps / taps.sum(), tf.float32)


def _smooth(field: tf.Tensor, sigma: float) -> tf.Tensor:
    """Separable Gaussian smoothing of ``(B, H, W, C)``."""
    taps = _gaussian_kernel(sigma)
    k = tf.shape(taps)[0]
    channels = field.shape[-1]
    row = tf.tile(tf.reshape(taps, [1, k, 1, 1]), [1, 1, channels, 1])
    col = tf.tile(tf.reshape(taps, [k, 1, 1, 1]), [1, 1, channels, 1])
    out = tf.nn.depthwise_conv2d(field, row, [1, 1, 1, 1], "SAME")
    return tf.nn.depthwise_conv2d(out, col, [1, 1, 1, 1], "SAME")


def _bilinear(images: tf.Tensor, ys: tf.Tensor, xs: tf.Tensor) -> tf.Tensor:
    """Sample ``(B, 28, 28, 1)`` at ``(B, 28, 28)`` coordinates, zeros outside."""
    padded = tf.pad(images[..., 0], [[0, 0], [1, 1], [1, 1]])
    ys, xs = ys + 1.0, xs + 1.0
    y0, x0 = tf.floor(ys), tf.floor(xs)
    wy, wx = ys - y0, xs - x0
    limit = 29.0
    out = tf.zeros_like(ys)
    batch = tf.broadcast_to(tf.range(tf.shape(ys)[0])[:, None, None], tf.shape(ys))
    for dy, fy in ((0.0, 1.0 - wy), (1.0, wy)):
        for dx, fx in ((0.0, 1.0 - wx), (1.0, wx)):
            yy = tf.clip_by_value(y0 + dy, 0.0, limit)
            xx = tf.clip_by_value(x0 + dx, 0.0, limit)
            inside = tf.cast((y0 + dy >= 0) & (y0 + dy <= limit), tf.float32) * tf.cast(
                (x0 + dx >= 0) & (x0 + dx <= limit), tf.float32
            )
            index = tf.stack([batch, tf.cast(yy, tf.int32), tf.cast(xx, tf.int32)], axis=-1)
            out += fy * fx * inside * tf.gather_nd(padded, index)
    return out[..., None]


def _warp(batch: tf.Tensor, seed: tf.Tensor, a: Augment) -> tf.Tensor:
    """One resampling for the affine map and the elastic field together."""
    n = tf.shape(batch)[0]
    s = tf.random.experimental.stateless_split(seed, 7)
    angle = tf.random.stateless_uniform([n], s[0], -a.rotation, a.rotation) * (math.pi / 180)
    shear = tf.random.stateless_uniform([n], s[1], -a.shear, a.shear)
    scale = 1.0 + tf.random.stateless_uniform([n], s[2], -a.scale, a.scale)
    aspect = 1.0 + tf.random.stateless_uniform([n], s[3], -a.aspect, a.aspect)
    shift = tf.random.stateless_uniform([n, 2], s[4], -a.shift, a.shift)
    sy, sx = scale * tf.sqrt(aspect), scale / tf.sqrt(aspect)
    cos, sin = tf.cos(angle), tf.sin(angle)
    # Output -> input: inverse of R @ Sh @ S, about the centre (13.5, 13.5).
    a00, a01 = cos * sx, (cos * shear - sin) * sy
    a10, a11 = sin * sx, (sin * shear + cos) * sy
    det = a00 * a11 - a01 * a10
    i00, i01, i10, i11 = a11 / det, -a01 / det, -a10 / det, a00 / det
    grid = tf.range(28, dtype=tf.float32) - 13.5
    gy, gx = tf.meshgrid(grid, grid, indexing="ij")
    oy = gy[None] - shift[:, 1, None, None]
    ox = gx[None] - shift[:, 0, None, None]
    xs = i00[:, None, None] * ox + i01[:, None, None] * oy + 13.5
    ys = i10[:, None, None] * ox + i11[:, None, None] * oy + 13.5
    if a.elastic_alpha > 0:
        field = tf.random.stateless_uniform([n, 28, 28, 2], s[5], -1.0, 1.0)
        field = _smooth(field, a.elastic_sigma)
        # Normalize the smoothed field's spread so alpha is the displacement in px.
        field = field / (tf.math.reduce_std(field, axis=[1, 2, 3], keepdims=True) + 1e-6)
        strength = tf.random.stateless_uniform([n, 1, 1, 1], s[6], 0.0, a.elastic_alpha)
        field = field * strength
        ys, xs = ys + field[..., 0], xs + field[..., 1]
    return _bilinear(batch, ys, xs)


def _stroke_blur_contrast(batch: tf.Tensor, seed: tf.Tensor, a: Augment) -> tf.Tensor:
    n = tf.shape(batch)[0]
    s = tf.random.experimental.stateless_split(seed, 3)
    dilated = tf.nn.max_pool2d(batch, 3, 1, "SAME")
    eroded = -tf.nn.max_pool2d(-batch, 3, 1, "SAME")
    amount = tf.random.stateless_uniform([n, 1, 1, 1], s[0], -a.stroke_thin, a.stroke_thick)
    thick = batch + tf.maximum(amount, 0.0) * (dilated - batch)
    thin = batch + tf.maximum(-amount, 0.0) * (eroded - batch)
    out = tf.where(amount >= 0.0, thick, thin)
    kernel = tf.constant([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0
    blurred = tf.nn.conv2d(out, tf.reshape(kernel, [3, 3, 1, 1]), 1, "SAME")
    draw = tf.random.stateless_uniform([n, 1, 1, 1], s[1], 0.0, 1.0)
    weight = tf.where(draw < a.blur, draw / max(a.blur, 1e-6), 0.0)
    out = out + weight * (blurred - out)
    peak = tf.reduce_max(out, axis=[1, 2, 3], keepdims=True)
    out = tf.clip_by_value(out / tf.maximum(peak, 1e-3), 0.0, 1.0)
    gamma = tf.exp(tf.random.stateless_uniform([n, 1, 1, 1], s[2], -a.gamma, a.gamma))
    return tf.pow(out + 1e-6, gamma)


def augment(batch: tf.Tensor, seed: tf.Tensor, a: Augment = Augment()) -> tf.Tensor:
    """Augment a ``(B, 28, 28, 1)`` float32 batch in [0, 1]; ``seed`` is a ``[2]`` int tensor."""
    first, second = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    out = _warp(_stroke_blur_contrast(batch, first, a), second, a)
    peak = tf.reduce_max(out, axis=[1, 2, 3], keepdims=True)
    return tf.clip_by_value(out / tf.maximum(peak, 1e-3), 0.0, 1.0)


# ------------------------------------------------------------------ styled digits


def _styled_one(job: tuple[np.ndarray, int, int]) -> np.ndarray | None:
    from dataclasses import replace as _replace

    import outside_digits as od

    from handwriting import photo, random_style
    from lenet_mnist import ImageError, prepare_image

    digit, kind, seed = job
    rng = np.random.default_rng(seed)
    try:
        if kind == 0:
            style = random_style(rng)
            if rng.random() < 1 / 3:
                style = _replace(style, stroke=int(rng.integers(1, 4)))
            return prepare_image(photo(digit, style, rng))
        size, levels = (8, 17) if kind in (1, 3) else (16, 2)
        scan = od.small_scan(digit, size, levels)
        return prepare_image(od.enlarge(scan) if kind == 3 else scan)
    except ImageError:
        return None


def styled_digits(
    images: np.ndarray, labels: np.ndarray, count: int, seed: int, processes: int
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` of ``images`` as pictures (photo, 8x8, 16x16, enlarged 8x8), prepared."""
    if count <= 0:
        return np.zeros((0, 28, 28, 1), np.float32), np.zeros((0,), labels.dtype)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(images), size=count, replace=False)
    jobs = [(images[i, :, :, 0], k % 4, seed * 1_000_003 + k) for k, i in enumerate(picks)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        out = pool.map(_styled_one, jobs, chunksize=64)
    keep = [k for k, o in enumerate(out) if o is not None]
    stacked = np.stack([out[k] for k in keep])[..., None].astype(np.float32)
    return stacked, labels[picks[keep]]


# ------------------------------------------------------------------ training


def fit(
    images: np.ndarray,
    labels: np.ndarray,
    a: Augment,
    epochs: int,
    args: argparse.Namespace,
    steps_limit: int | None = None,
) -> keras.Model:
    keras.utils.set_random_seed(args.seed)
    n = len(images)
    steps = math.ceil(n / args.batch_size) if steps_limit is None else steps_limit
    total = steps * epochs
    seed = args.seed
    dataset = (
        tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
        .shuffle(n, seed=seed, reshuffle_each_iteration=True)
        .batch(args.batch_size)
        .repeat()
        .enumerate()
        .map(
            lambda i, xy: (augment(xy[0], tf.stack([tf.constant(seed, tf.int64), i]), a), xy[1]),
            num_parallel_calls=2,
            deterministic=True,
        )
        .map(lambda x, y: (x, tf.one_hot(y, 10)))
        .prefetch(4)
    )
    warmup = min(steps, max(1, total // 4))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=max(1, total - warmup),
        warmup_target=args.learning_rate,
        warmup_steps=warmup,
    )
    model = build_lenet("robust", seed=seed)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.05),
        metrics=["accuracy"],
    )
    model.fit(dataset, epochs=epochs, steps_per_epoch=steps, verbose=2)
    plain = build_lenet("robust")
    plain.set_weights(model.get_weights())
    return plain


def accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    if len(images) == 0:
        return float("nan")
    return float((predict_digits(model, images).digits == labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="MNIST directory (default: as load_mnist)")
    parser.add_argument("--epochs", type=int, default=14, help="final training epochs")
    parser.add_argument("--search-epochs", type=int, default=4, help="0 skips the search")
    parser.add_argument("--styled", type=int, default=6000, help="styled digits to add")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=2, help="for the styled digits")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny, not saved over")
    parser.add_argument(
        "--time-steps", type=int, default=0, help="only time N training steps (CPU s per step)"
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.output is None:
        args.output = Path(tempfile.mkdtemp()) / "robust.keras" if args.quick else DEFAULT_OUTPUT
    limit = 20 if args.quick else None
    styled_count = 40 if args.quick else args.styled
    started = time.perf_counter()
    times: dict[str, float] = {}

    data = load_mnist(args.data_dir, download=False)
    train_x = data.train_images.astype(np.float32)
    train_y = data.train_labels.astype(np.int64)
    fit_x, fit_y = train_x[:VALIDATION_FIRST], train_y[:VALIDATION_FIRST]
    val_x, val_y = train_x[VALIDATION_FIRST:], train_y[VALIDATION_FIRST:]
    if args.quick:
        fit_x, fit_y, val_x, val_y = fit_x[:3000], fit_y[:3000], val_x[:500], val_y[:500]

    names = list(CANDIDATES)
    if args.time_steps:
        cpu, wall = time.process_time(), time.perf_counter()
        fit(fit_x, fit_y, CANDIDATES[names[0]], 1, args, args.time_steps)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(
            f"{args.time_steps} steps (tracing included): {cpu / args.time_steps:.3f} s CPU "
            f"and {wall / args.time_steps:.3f} s wall per step; load {os.getloadavg()[0]:.1f}"
        )
        return
    chosen = names[0]
    summary: dict[str, object] = {"seed": args.seed, "quick": args.quick}
    temperature = 1.0
    if args.search_epochs > 0:
        t0 = time.perf_counter()
        styled_fit = styled_digits(fit_x, fit_y, styled_count, args.seed, args.processes)
        styled_val = styled_digits(
            val_x, val_y, max(40, styled_count // 10), args.seed + 1, args.processes
        )
        times["styled_search_s"] = time.perf_counter() - t0
        x = np.concatenate([fit_x, styled_fit[0]])
        y = np.concatenate([fit_y, styled_fit[1]])
        scores: dict[str, dict[str, float]] = {}
        best_model, best_score = None, -1.0
        for name in names:
            t0 = time.perf_counter()
            model = fit(x, y, CANDIDATES[name], args.search_epochs, args, limit)
            clean = accuracy(model, val_x, val_y)
            styled = accuracy(model, *styled_val)
            scores[name] = {
                "val_accuracy": round(clean, 4),
                "val_styled_accuracy": round(styled, 4),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            print(f"candidate {name}: {scores[name]}", flush=True)
            if clean + styled > best_score:  # the first candidate wins ties
                chosen, best_model, best_score = name, model, clean + styled
        if best_model is None:  # pragma: no cover - every score is a number
            raise RuntimeError("no candidate was trained")
        logits = predict_digits(best_model, val_x).logits
        temperature = fit_temperature(logits, val_y)
        summary["search"] = scores
        summary["val_ece_15_bins_before"] = round(
            expected_calibration_error(softmax(logits), val_y), 5
        )
        summary["val_ece_15_bins_after"] = round(
            expected_calibration_error(softmax(logits, temperature), val_y), 5
        )
        times["search_s"] = time.perf_counter() - started
    print(f"chosen: {chosen}, temperature {temperature:.4f}", flush=True)

    t0 = time.perf_counter()
    all_x, all_y = (np.concatenate([fit_x, val_x]), np.concatenate([fit_y, val_y]))
    styled_all = styled_digits(all_x, all_y, styled_count, args.seed + 2, args.processes)
    times["styled_final_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    final = fit(
        np.concatenate([all_x, styled_all[0]]),
        np.concatenate([all_y, styled_all[1]]),
        CANDIDATES[chosen],
        1 if args.quick else args.epochs,
        args,
        limit,
    )
    times["final_s"] = time.perf_counter() - t0
    if limit is not None:
        steps = (len(names) if args.search_epochs > 0 else 0) * args.search_epochs * limit + limit
        print(f"quick: {steps} training steps, {times}")
    report = evaluate_model(final, data)
    path = save_model(final, args.output)
    times["total_s"] = time.perf_counter() - started
    summary.update(
        {
            "temperature": round(temperature, 4),
            "fitted_on": "MNIST training images 55000-59999, by the search's chosen model",
            "recipe": {"candidate": chosen, **asdict(CANDIDATES[chosen]), "epochs": args.epochs},
            "test_accuracy": round(report.accuracy, 4),
            "seconds": {k: round(v, 1) for k, v in times.items()},
        }
    )
    calibration = args.output.with_suffix(".json")
    calibration.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(summary, indent=1))
    print(f"saved {path} ({path.stat().st_size:,} bytes) and {calibration}")


if __name__ == "__main__":
    main()
