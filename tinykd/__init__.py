"""tinykd: distill a fine-tuned text model into a tiny one and prove it meets a serving budget."""

__version__ = "0.1.0"
