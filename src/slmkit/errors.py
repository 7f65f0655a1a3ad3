"""User-facing errors.

Every error a user can cause by their config, their data or their environment is a
`SlmkitError`. The CLI prints its message (no traceback) and exits with its `exit_code`.
Messages name the file / line / field at fault and the next step to take.
"""

from __future__ import annotations


class SlmkitError(Exception):
    """Base class: a problem the user can fix; printed without a traceback."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  fix: {self.hint}"
        return self.message


class ConfigError(SlmkitError):
    """slmkit.yaml is missing, unreadable or invalid. Carries every problem found."""

    exit_code = 2

    def __init__(self, problems: list[str], *, path: str | None = None) -> None:
        self.problems = list(problems)
        self.path = path
        where = f"{path}: " if path else ""
        if len(self.problems) == 1:
            message = f"{where}{self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            message = f"{where}{len(self.problems)} problems\n{lines}"
        super().__init__(message)


class DataError(SlmkitError):
    """An input file cannot be read at all (missing, empty, wrong format)."""

    exit_code = 3


class ModelError(SlmkitError):
    """A base model or adapter cannot be found, fetched or loaded."""

    exit_code = 4


class StageError(SlmkitError):
    """A stage cannot run because an artifact it reads is missing or inconsistent."""

    exit_code = 5


class GoldSetChanged(StageError):
    """The gold set on disk no longer matches the locked hash."""


class GateFailed(SlmkitError):
    """An evaluation gate did not pass; the release is blocked."""

    exit_code = 6


class ReleaseBlocked(SlmkitError):
    """A blocking item of the production checklist (rollback rehearsal, PII, ...) is not met."""

    exit_code = 9


class LoadTestFailed(SlmkitError):
    """`slmkit loadtest`: a request failed under load, or p95 latency is over its budget."""

    exit_code = 10


class AlertFiring(SlmkitError):
    """`slmkit monitor alerts --exit-code`: an alert rule is firing (for cron jobs that mail on failure)."""

    exit_code = 11


class RegistryError(SlmkitError):
    """The registry refused an operation (unknown release, nothing to roll back to, ...)."""

    exit_code = 7


class ServeError(SlmkitError):
    """The server cannot start (port taken, no release to serve, ...)."""

    exit_code = 8
