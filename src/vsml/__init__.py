"""vsml: Variable Shared Meta Learning in JAX (Kirsch & Schmidhuber, "Meta Learning Backpropagation
And Improving It", NeurIPS 2021). See README.md and docs/architecture.md."""

from vsml.online import OnlineModel, online

__all__ = ["OnlineModel", "online"]
