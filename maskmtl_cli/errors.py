"""Typed errors raised by the core library.

Core code raises these and never prints or exits; ``maskmtl_cli.cli`` is the one place that turns
them into ``Error: ...`` on stderr and an exit code. Every message should name the bad value and
say what to do next.
"""

import errno

#: OSErrors of the place read or written (not of one file's content), with a plain reason.
PLACE_ERRORS = {
    errno.EACCES: "permission denied", errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system", errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
}
#: The ones that more free space cures.
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


class MaskmtlError(Exception):
    """Base class: an error the user can fix. The CLI exits with code 1."""

    exit_code = 1


class InputError(MaskmtlError):
    """A path, file or option value given by the user is unusable."""


class DataError(MaskmtlError):
    """Images, labels or manifests are missing, malformed or inconsistent."""


class OutputError(MaskmtlError):
    """An output cannot be written: no permission, a read-only file system or a full disk."""


class ImageTooLargeError(DataError):
    """An image has more pixels than a limit allows (a decompression bomb, or just too big)."""


class ModelError(MaskmtlError):
    """A model file or run folder is missing, corrupt or incompatible."""


class TrainingError(MaskmtlError):
    """Training cannot go on (for example a NaN loss)."""


class ClusterError(MaskmtlError):
    """A cluster (Ray) cannot be reached, or its workers cannot do the work."""


class MissingExtraError(MaskmtlError):
    """An option needs an optional extra that is not installed. The CLI exits with code 2."""

    exit_code = 2


class NoFaceError(MaskmtlError):
    """No face was found where one was required (``predict --strict``)."""

    exit_code = 3


def place_error_message(error: OSError, target=None) -> str | None:
    """One line for an OSError of ``PLACE_ERRORS``: what failed, where, what to do (else None).

    Args:
        error: The error.
        target: The file meant (default: the error's own file name, maybe a temporary file).
    """
    reason = PLACE_ERRORS.get(error.errno)
    if reason is None:
        return None
    where = target if target is not None else (error.filename or "a file")
    if error.errno in FULL_DISK:
        return (f"Cannot write {where}: {reason}. Free some space or choose a location on "
                "another disk, then rerun.")
    if error.errno == errno.EROFS:
        return (f"Cannot write {where}: {reason}. Choose a location on a writable disk, "
                "then rerun.")
    return (f"Cannot access {where}: {reason}. Fix its permissions (chmod) or choose another "
            "location, then rerun.")
