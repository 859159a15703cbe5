"""The agent's process: a Python audit hook (PEP 578) that refuses to open the evaluation server's files.

:func:`install` is called first thing in the agent's process, before the agent's code runs; an audit hook
cannot be removed afterwards. It refuses, with ``PermissionError``, and reports to the exploit log:

- opening, listing, linking, renaming or removing anything under the forbidden directories (the server's label
  files and logs), by any path that resolves there (symlinks, ``..``);
- reading another process's memory or files through ``/proc/<pid>`` (the server's, for one);
- starting a new process (a child would have no hook).

What it does not stop: native code that calls the C library directly (``ctypes`` is loaded by torch before the
hook goes in), and recomputing a task from the world's generator with a known seed. Serve a world seed the
agent is not told (``ServerConfig.world_seed``) to close the second.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone

# event -> how many of its first arguments are paths
PATH_EVENTS = {"open": 1, "os.listdir": 1, "os.scandir": 1, "os.remove": 1, "os.rename": 2, "os.link": 2,
               "os.symlink": 2, "os.truncate": 1, "os.chmod": 1, "os.chown": 1, "shutil.copyfile": 2,
               "shutil.copytree": 2, "os.rmdir": 1, "os.mkdir": 1, "os.utime": 1}
SPAWN_EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
                "pty.spawn")


def install(forbidden: list[str | os.PathLike], report_to: str | os.PathLike) -> None:
    """Refuse this process any access to ``forbidden`` directories; report attempts to ``report_to`` (JSONL of
    ``ExploitAttempt``, opened now, before the hook, so that reporting needs no ``open``)."""
    roots = [os.path.realpath(p) for p in forbidden]
    fd = os.open(report_to, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    own_proc = f"/proc/{os.getpid()}"
    busy = [False]  # the hook's own calls (realpath) raise audit events too

    def report(kind: str, detail: str) -> None:
        line = {"type": "exploit_attempt", "source": "sandbox", "kind": kind, "detail": detail,
                "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.write(fd, (json.dumps(line) + "\n").encode())

    def forbidden_path(raw) -> str | None:
        if not isinstance(raw, (str, bytes, os.PathLike)):
            return None  # an fd already open, or no path
        path = os.path.realpath(os.fsdecode(os.fspath(raw)))
        if any(path == r or path.startswith(r + os.sep) for r in roots):
            return path
        parts = path.split(os.sep)
        if len(parts) > 2 and parts[1] == "proc" and parts[2].isdigit() and path != own_proc \
                and not path.startswith(own_proc + os.sep):
            return path
        return None

    def hook(event: str, args: tuple) -> None:
        if busy[0]:
            return
        if event in PATH_EVENTS or event.startswith(SPAWN_EVENTS):
            busy[0] = True
            try:
                if event.startswith(SPAWN_EVENTS):
                    report("spawn", f"{event} refused: a new process would run without the sandbox")
                    raise PermissionError(f"sandbox: {event} is not allowed in the agent's process")
                hits = [p for p in map(forbidden_path, args[:PATH_EVENTS[event]]) if p]
                if hits:
                    report("label_file", f"{event} {hits[0]}")
                    raise PermissionError(f"sandbox: {hits[0]} is out of the agent's reach (the evaluation server's "
                                          "files, another process)")
            finally:
                busy[0] = False

    sys.addaudithook(hook)


__all__ = ["install"]
