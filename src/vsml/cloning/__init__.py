"""Backpropagation in forward mode: learning-algorithm cloning into the VSML RNN (SPEC §3).

- :mod:`vsml.cloning.reference` — online SGD written per cell with VSML-layout messages
  (:class:`~vsml.cloning.reference.ReferenceBackprop`, an ``OnlineLearner``);
- :mod:`vsml.cloning.handcrafted` — an analytically constructed sub-RNN implementing it approximately;
- :mod:`vsml.cloning.clone` — supervised cloning (:class:`~vsml.cloning.clone.CloneConfig`,
  :func:`~vsml.cloning.clone.run_clone`);
- :mod:`vsml.cloning.cli` — the ``vsml clone`` sub-command (``register(subparsers)``);
- :mod:`vsml.cloning.evaluate` — cloned LAs vs online SGD on MNIST / Fashion-MNIST.

Shipped results: ``vsml.pretrained.load("cloned_sgd_1layer")``, ``…("cloned_sgd_hidden")``.
See docs/cloning.md.
"""

from vsml.cloning.reference import ReferenceBackprop

__all__ = ["ReferenceBackprop"]
