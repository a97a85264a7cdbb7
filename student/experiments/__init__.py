"""Experiments run on demand (not by `all`): distilled vs gold-only students over seeds, one augmentation op at a time, a tiny transformer's schedule step by step."""
