"""Tiny meta-training configs shared by tests/test_meta_*.py (fast on 2 CPU cores)."""

import os


def child_xla_flags() -> dict:
    """XLA_FLAGS for a test's subprocess: the suite's compile-speed flags (tests/conftest.py), none
    of the parent's device flags."""
    from conftest import TEST_XLA_FLAGS

    on = TEST_XLA_FLAGS in os.environ.get("XLA_FLAGS", "")
    return {"XLA_FLAGS": TEST_XLA_FLAGS} if on else {}


TINY_VSML = {"state_size": 4, "message_size": 2, "label_feeding": True}


def tiny_config(out, **over) -> dict:
    cfg = {
        "name": "tiny",
        "out": str(out),
        "seed": 0,
        "iterations": 6,
        "method": "gradient",
        "learner": {"name": "vsml", "options": dict(TINY_VSML)},
        "data": {"datasets": [{"name": "digits"}], "flatten": True, "steps": 8, "num_classes": 3},
        "gradient": {"lr": 0.01, "clip": 25.0, "meta_batch": 2},
        "es": {"population": 4, "sigma": 0.05, "lr": 0.025},
        "checkpoint": {"every": 3, "keep": 2},
        "log": {"progress": False, "tensorboard": False, "every": 1000},
    }
    for k, v in over.items():
        cfg[k] = v
    return cfg
