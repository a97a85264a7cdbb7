"""Teachers: the offline E5 import, fine-tuning (stage `teacher`) and labelling (stage `label`)."""

from tinykd.teacher import mean_pool  # noqa: F401  registers the mean-pooling head with the Auto classes
