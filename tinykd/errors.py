"""User-facing error types: one per kind of user error.

The CLI turns these into a single clear line and a non-zero exit; any other exception is a bug and
keeps its traceback. Messages always say *where* (file, line, key) and *what was expected*.
"""


class TinykdError(Exception):
    """Base class for errors caused by the user's input rather than by a bug in tinykd."""


class ConfigError(TinykdError):
    """The YAML config is malformed, has an unknown key, a wrong type or an inconsistent combination."""


class DataError(TinykdError):
    """A data file is missing, unreadable, or has a bad row (empty text, unknown label, bad bytes)."""


class ArtifactError(TinykdError):
    """A stage's input artifact is missing or incomplete (run the earlier stage first)."""


class TrainingError(TinykdError):
    """Training went wrong in a way the user can fix in the config (e.g. a collapsed fine-tuning run)."""
