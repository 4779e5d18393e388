"""Backpropagation in forward mode: learning-algorithm cloning into the VSML RNN (docs/cloning.md).

- :mod:`vsml.cloning.backprop_la` — online SGD written per cell with VSML-layout messages
  (:class:`~vsml.cloning.backprop_la.ReferenceBackprop`, an ``OnlineLearner``);
- :mod:`vsml.cloning.handcrafted` — an analytically constructed sub-RNN implementing it approximately;
- :mod:`vsml.cloning.clone` — supervised cloning (:class:`~vsml.cloning.clone.CloneConfig`,
  :func:`~vsml.cloning.clone.run_clone`);
- :mod:`vsml.cloning.cli` — the ``vsml clone`` sub-command (``register(subparsers)``);
- :mod:`vsml.cloning.evaluate` — cloned LAs vs online SGD on MNIST / Fashion-MNIST.

Shipped results: ``vsml.pretrained.load("cloned_sgd_1layer")``, ``…("cloned_sgd_hidden")``.
See docs/cloning.md.
"""

from vsml.cloning.backprop_la import ReferenceBackprop

__all__ = ["ReferenceBackprop"]
