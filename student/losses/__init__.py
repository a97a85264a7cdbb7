"""Distillation losses, one per module; the trainer combines them by the config's named weights."""
