"""One run at a time per deployment: an advisory lock the kernel releases when the holder dies.

A deployment is identified by its inventory sources (resolved paths). The lock file records who
holds it, so a second `allmende apply` can say which run is in the way.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from allmende.errors import BusyError


def deployment_key(inventories: Sequence[str]) -> str:
    text = "\n".join(sorted(str(Path(i).expanduser().resolve()) for i in inventories))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class DeploymentLock:
    """`with DeploymentLock(state, inventories, run_id=...):` holds the lock or raises BusyError."""

    def __init__(self, state: Path, inventories: Sequence[str], **holder: Any) -> None:
        folder = state / "locks"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = folder / f"{deployment_key(inventories)}.lock"
        self.inventories = list(inventories)
        self.holder = holder
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BusyError(self.busy_message()) from None
        info = {"pid": os.getpid(), "since": time.time(), "inventories": self.inventories, **self.holder}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info, sort_keys=True).encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def busy_message(self) -> str:
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, json.JSONDecodeError):
            info = {}
        who = f"run {info['run_id']}" if info.get("run_id") else "another run"
        pid = f", pid {info['pid']}" if info.get("pid") else ""
        since = (
            f", since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(info['since']))}" if info.get("since") else ""
        )
        return f"{who}{pid}{since} holds the lock of this deployment ({self.path}); wait for it or stop it first"

    def __enter__(self) -> DeploymentLock:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()
