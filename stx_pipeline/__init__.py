"""stx_pipeline: an exact, resumable Stacks transaction history and wallet metrics on it."""

__version__ = "0.1.0"
