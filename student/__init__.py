"""Student models (small classifiers and tiny transformers), distillation losses and the distill stage."""
