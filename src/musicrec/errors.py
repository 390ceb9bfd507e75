"""The domain errors of musicrec, one short list mapped to exit codes and HTTP codes in one place.

Every error carries a message meant for the person who caused it: it names the file, column,
row, parameter or id that is wrong.
"""


class MusicrecError(Exception):
    """Base of every error musicrec raises on purpose."""


class DataValidationError(MusicrecError):
    """An input file or record does not follow the KKBox schema."""


class ArtifactError(MusicrecError):
    """A model artifact is missing, corrupt or of an unknown format."""


class InvalidParameterError(MusicrecError):
    """A parameter is out of its documented range."""


class NotFoundError(MusicrecError):
    """A named thing (model, dataset, job, user) does not exist."""


class ConflictError(MusicrecError):
    """The request is valid but the state does not allow it (e.g. activating a failed model)."""


class UnavailableError(MusicrecError):
    """The service cannot answer yet (e.g. no active model)."""
