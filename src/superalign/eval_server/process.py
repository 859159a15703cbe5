"""Start the evaluation server as a process of its own and wait until it answers."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from superalign.eval_server import ServerConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``with ServerProcess(config) as url: ...``: the server runs in a child process for the block's length."""

    def __init__(self, config: ServerConfig, startup_seconds: float = 300):
        self.config, self.startup_seconds = config, startup_seconds
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> str:
        import httpx

        port = free_port()
        Path(self.config.directory).mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "superalign.eval_server", "--dir", str(self.config.directory), "--port", str(port),
               "--world-seed", str(self.config.world_seed), "--rate", str(self.config.rate_per_minute),
               *[a for name, (pool, test) in self.config.tasks.items() for a in ("--task", f"{name}={pool},{test}")],
               *(["--budget", str(self.config.budget)] if self.config.budget is not None else [])]
        with (Path(self.config.directory) / "server.log").open("ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the evaluation server exited ({self.proc.returncode}); see "
                                   f"{Path(self.config.directory) / 'server.log'}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self.url
            except httpx.TransportError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"the evaluation server did not answer within {self.startup_seconds:.0f} s")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
