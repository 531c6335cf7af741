"""Running the app under uvicorn. With several workers on Linux each worker listens on its own
``SO_REUSEPORT`` socket, so the kernel spreads connections evenly: on uvicorn's one shared
socket, the first worker to wake takes them, and 32 keep-alive clients all landed on one of two
workers in one run out of three here (half the requests/s, twice the latency)."""

from __future__ import annotations

import contextlib
import socket
import sys
from typing import Any

from mlops.errors import ConfigError

APP = "mlops.serving.app:create_app"


def balanced(workers: int, port: int) -> bool:
    """Whether workers get a listener each (Linux, several workers, a fixed port)."""
    return workers > 1 and port != 0 and sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def listener(host: str, port: int, backlog: int, *, group: bool = True) -> socket.socket:
    """A listening socket on ``host:port``, in its SO_REUSEPORT group unless ``group`` is
    False (then it fails if anything listens there, a group included)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if group:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


class WorkerListener:
    """Stands in uvicorn's socket list: pickled into each spawned worker (and each one the
    supervisor restarts), it becomes a listener of that worker's own."""

    def __init__(self, host: str, port: int, backlog: int) -> None:
        self.host, self.port, self.backlog = host, port, backlog

    def __reduce__(self):
        return listener, (self.host, self.port, self.backlog)


def run(host: str, port: int, workers: int, **options: Any) -> None:
    """Serve until interrupted; ``options`` are uvicorn's (log_config, timeouts...).
    ``ConfigError`` when the address cannot be listened on."""
    import uvicorn

    kwargs = dict(factory=True, host=host, port=port, workers=workers, **options)
    # Fail here, once, with the OS's reason, rather than in uvicorn's log or in every worker;
    # outside the group, so that a second server on the port fails instead of joining it.
    try:
        listener(host, port, 1, group=False).close()
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            "stop what listens there, or choose another --port / MLOPS_SERVE_PORT "
            "(--host / MLOPS_SERVE_HOST must be an address of this machine)",
        ) from exc
    if not balanced(workers, port):
        uvicorn.run(APP, **kwargs)
        return
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(APP, **kwargs)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn.run's handling of Ctrl-C
        Multiprocess(config, sockets=[WorkerListener(host, port, config.backlog)]).run()
