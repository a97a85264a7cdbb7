"""Data augmentation for data distillation: ops that make new, teacher-labelled training texts."""
