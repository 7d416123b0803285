"""stx_pipeline: an exact, resumable Stacks transaction history and the wallet metrics built on it."""

__version__ = "0.1.0"
