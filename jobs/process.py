"""Who a worker process is, and whether a process seen in the database is still alive."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def host_key() -> str:
    """The same for two processes exactly when one can check the other's pid: the kernel's boot
    id and the pid namespace (two containers on one machine differ), or the host name."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = ""
    if boot and namespace:
        return f"{boot}:{namespace}"
    return f"host:{socket.gethostname()}"


def proc_start(pid: int) -> str:
    """When the process started (clock ticks since boot), to tell it from a later one that was
    given the same pid; "" where /proc is not available."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return ""
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 else ""


def is_alive(pid: int, started: str) -> bool:
    """The process ``pid`` of this host is running and is the one that started at ``started``."""
    stat = _read(f"/proc/{pid}/stat")
    if stat:
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] in {"Z", "X"}:  # a zombie (killed, not yet reaped by its parent) is dead
            return False
        return not started or (len(fields) > 19 and fields[19] == started)
    if Path("/proc/self/stat").exists():
        return False  # /proc works here, and this pid has no entry
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
