"""Reports: figures of the data and the model, and the written evaluation report.

* :mod:`~lenet_mnist.report.canvas`: matplotlib on demand, figures written atomically;
* :mod:`~lenet_mnist.report.figures`: ``plot_samples``, ``plot_history``,
  ``plot_confusion_matrix``, ``plot_misclassified``;
* :mod:`~lenet_mnist.report.written`: ``write_report``.

Needs the optional extra ``plot`` (matplotlib). Importing this package imports none of them.
"""
