"""Pictures: preparing any picture of a digit in MNIST's form, batching, image strips.

* :mod:`~lenet_mnist.images.prepare`: :func:`prepare_image` (decoding included);
* :mod:`~lenet_mnist.images.batch`: the model's input from mixed inputs (files,
  bytes, pictures, MNIST-form arrays);
* :mod:`~lenet_mnist.images.strip`: :func:`save_image_strip`.

Importing this package imports none of them.
"""
