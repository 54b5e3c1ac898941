"""Typed errors raised by the core library.

Core code raises these and never prints or exits; ``maskmtl_cli.cli`` is the one place that turns
them into ``Error: ...`` on stderr and an exit code. Every message should name the bad value and
say what to do next.
"""


class MaskmtlError(Exception):
    """Base class: an error the user can fix. The CLI exits with code 1."""

    exit_code = 1


class InputError(MaskmtlError):
    """A path, file or option value given by the user is unusable."""


class DataError(MaskmtlError):
    """Images, labels or manifests are missing, malformed or inconsistent."""


class ImageTooLargeError(DataError):
    """An image has more pixels than a limit allows (a decompression bomb, or just too big)."""


class ModelError(MaskmtlError):
    """A model file or run folder is missing, corrupt or incompatible."""


class TrainingError(MaskmtlError):
    """Training cannot go on (for example a NaN loss)."""


class NoFaceError(MaskmtlError):
    """No face was found where one was required (``predict --strict``)."""

    exit_code = 3
