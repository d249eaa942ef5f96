"""One exception hierarchy for the whole package.

Exceptions mean stop. Recoverable trouble (a bad file inside a container, a step that
failed) is data: it goes to the acquisition log and the run goes on. The CLI maps each
class below to a message, a hint and an exit code.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3


class ForensicsError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = EXIT_CHECK_FAILED
    hint = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class UsageProblem(ForensicsError):
    """The caller asked for something that cannot be done as asked."""

    exit_code = EXIT_USAGE


class EnvironmentProblem(ForensicsError):
    """The machine lacks what the command needs: a root, docker data, a permission."""

    exit_code = EXIT_ENVIRONMENT


class NoDockerData(EnvironmentProblem):
    hint = "Pass --root with the host's root file system (it must hold var/lib/docker)."


class EngineUnavailable(EnvironmentProblem):
    hint = "Check --docker-host, or pass --no-engine to work from disk alone."


class NotFound(ForensicsError):
    """A container, image or file that was asked for does not exist."""

    exit_code = EXIT_USAGE


class CheckFailed(ForensicsError):
    """A verification or threshold check did not pass."""

    exit_code = EXIT_CHECK_FAILED


class ReadOnlyViolation(ForensicsError):
    """Code tried a non-read call against the Engine API. A bug, never allowed."""


class UnsafePath(ForensicsError):
    """A path inside a container or image root could not be resolved safely."""


class EvidenceError(ForensicsError):
    """The evidence sink refused a write (bad name, duplicate, closed handle)."""
