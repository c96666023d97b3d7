"""Exit codes of the `allmende` command and the errors that map to them.

Every command ends with one of these codes; docs/driver.md has the table. An error carries its
code, so the command line prints one readable line (or a list of problems) and exits with it.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # a host failed or was unreachable, or ansible-playbook stopped with an error
    USAGE = 2  # bad command-line input; nothing ran
    REFUSED = 3  # refused by validation (inventory, NetBox data, site file); nothing was changed
    INTERRUPTED = 4  # stopped by SIGINT/SIGTERM; hosts keep what the run did so far
    BUSY = 5  # another run holds the deployment's lock
    ENVIRONMENT = 6  # a tool, service or state file the command needs is missing, unreachable or corrupt


class AllmendeError(Exception):
    """An error the command line reports as text (one problem per line) with its exit code."""

    code = ExitCode.ENVIRONMENT

    def __init__(self, message: str = "", problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        super().__init__(message or "\n".join(self.problems))


class UsageError(AllmendeError, ValueError):
    """Bad command-line input, reported before anything runs."""

    code = ExitCode.USAGE


class RefusedError(AllmendeError):
    """Validation found problems in the data; nothing was changed on any host."""

    code = ExitCode.REFUSED


class BusyError(AllmendeError):
    """Another run holds the lock of the same deployment."""

    code = ExitCode.BUSY


class StateError(AllmendeError):
    """A state file of the driver is unreadable or corrupt."""

    code = ExitCode.ENVIRONMENT
