"""Training: :func:`~lenet_mnist.training.train.train` and the parts it composes.

* :mod:`~lenet_mnist.training.train`: ``train``, one engine for every recipe;
* :mod:`~lenet_mnist.training.pipeline`: the batches of every epoch, from ``tf.data``;
* :mod:`~lenet_mnist.training.monitor`: the test split watched, ``val_`` metrics, targets;
* :mod:`~lenet_mnist.training.determinism`: seeding, op determinism;
* :mod:`~lenet_mnist.training.checkpoint`: checkpoints a kill cannot break, resuming;
* :mod:`~lenet_mnist.training.distribute`: ``tf.distribute`` strategies;
* :mod:`~lenet_mnist.training.history`: histories as JSON files.

Importing this package imports none of them (so not TensorFlow).
"""
