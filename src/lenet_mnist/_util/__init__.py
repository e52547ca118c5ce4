"""Helpers shared by every layer of the package (internal): no TensorFlow, no Keras.

* :mod:`~lenet_mnist._util.atomic`: a file appears complete under its name or not at all;
* :mod:`~lenet_mnist._util.checks`: argument checks with messages that end in what was given;
* :mod:`~lenet_mnist._util.image_array`: THE rule for what an image array is;
* :mod:`~lenet_mnist._util.import_hook`: run a function once a module is imported.
"""
