"""The networks and everything about model files.

* :mod:`~lenet_mnist.models.registry`: the variants by name, and :func:`build_lenet`;
* :mod:`~lenet_mnist.models.networks`: the functional networks themselves;
* :mod:`~lenet_mnist.models.lenet`: :class:`LeNet`, the tutorial's network subclassed;
* :mod:`~lenet_mnist.models.batch_norm`: :class:`FusedBatchNorm`;
* :mod:`~lenet_mnist.models.saving`: ``.keras`` files, saved atomically and loaded safely;
* :mod:`~lenet_mnist.models.pretrained`: the model shipped in the package.

``from lenet_mnist.models import build_lenet, VARIANTS`` keeps working; importing this
package does not import TensorFlow.
"""

from __future__ import annotations

from lenet_mnist.models.registry import DEFAULT_VARIANT, VARIANTS, VariantName, build_lenet

__all__ = ["DEFAULT_VARIANT", "VARIANTS", "VariantName", "build_lenet"]
