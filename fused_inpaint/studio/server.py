"""Serving the studio under uvicorn on a socket bound first (so that port 0 picks a free
port and the app knows its own address before the first request)."""

from __future__ import annotations

import ipaddress
import socket
import threading
from pathlib import Path

import uvicorn

from fused_inpaint.studio.app import Studio, create_app
from fused_inpaint.studio.security import WILDCARD_HOSTS, new_token


def is_local(host: str) -> bool:
    """Whether ``host`` is a loopback address or name (reachable from this machine only)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host``:``port`` (0: a free port); OSError if it cannot."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def addresses(host: str, port: int, token: str) -> list[str]:
    """The addresses to print, the token in each; on a wildcard host this machine's name
    and the loopback address."""
    names = [socket.gethostname(), "127.0.0.1"] if host in WILDCARD_HOSTS else [host]
    names = [f"[{n}]" if ":" in n else n for n in names]
    return [f"http://{name}:{port}/?token={token}" for name in names]


class StudioServer:
    """The studio on ``host``:``port``: ``run()`` in this thread until interrupted, or
    ``start()`` in a thread and ``stop()``. ``urls``: the addresses with the token."""

    def __init__(
        self,
        studio: Studio,
        host: str = "127.0.0.1",
        port: int = 0,
        input_path: Path | None = None,
        token: str | None = None,
    ):
        self.studio, self.token = studio, token or new_token()
        self.socket = listen(host, port)
        self.port = self.socket.getsockname()[1]
        self.host = host
        try:
            app = create_app(studio, self.token, host, self.port, input_path)
        except BaseException:
            self.socket.close()
            studio.close()
            raise
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
        self.server = uvicorn.Server(config)
        self.urls = addresses(host, self.port, self.token)
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self.run, name="studio-server", daemon=True)
        self._thread.start()
        if not _wait_for(lambda: self.server.started, timeout):
            raise RuntimeError(f"the studio server did not start within {timeout:g} s")

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)


def _wait_for(condition, timeout: float) -> bool:
    event = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if condition():
            return True
        event.wait(0.02)
    return condition()
