"""vsml: Variable Shared Meta Learning in JAX (Kirsch & Schmidhuber, "Meta Learning Backpropagation
And Improving It", NeurIPS 2021). See README.md and docs/architecture.md."""

__version__ = "0.1.0"  # the package version (pyproject.toml reads it); changes: CHANGELOG.md

from vsml.online import OnlineModel, online  # noqa: E402

__all__ = ["OnlineModel", "__version__", "online"]
