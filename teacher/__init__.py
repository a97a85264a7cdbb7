"""Teachers: the offline E5 import, fine-tuning (stage `teacher`) and labelling (stage `label`)."""

from tinykd.teacher import ensemble, mean_pool  # noqa: F401  register the ensemble and the mean-pooling head with the Auto classes
