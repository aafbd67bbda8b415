"""A byte-counting TCP relay in front of the test S3 server, on 127.0.0.1 only.

The CLI under test is pointed at the relay (``AWS_ENDPOINT_URL``) exactly as a user points it at a
server; the relay forwards every byte unchanged (request signatures cover the Host header, which the
client wrote for the relay's address, so the server checks them as usual) and counts what each direction
carried: ``down`` is what the client actually fetched, headers included. ``cut_after_up`` makes an upload
fail for real midway: once that many request bytes have passed, every connection is dropped and new ones
are closed at once (an endpoint that goes away during an upload).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

__all__ = ["Relay", "relay"]


@dataclass
class Relay:
    upstream: tuple[str, int]
    port: int = 0
    up: int = 0
    down: int = 0
    connections: int = 0
    cut_after_up: int | None = None
    #: Set once ``cut_after_up`` request bytes have passed.
    cut: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _open: list[socket.socket] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.up = self.down = self.connections = 0
            self.cut_after_up = None
            self.cut.clear()

    def _count(self, direction: str, n: int) -> bool:
        """Add ``n`` bytes; False when the connection must be dropped."""
        with self._lock:
            if direction == "up":
                self.up += n
                if self.cut_after_up is not None and self.up >= self.cut_after_up:
                    self.cut.set()
            else:
                self.down += n
            return not self.cut.is_set()

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data or not self._count(direction, len(data)):
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _serve(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self.cut.is_set():
                client.close()
                continue
            server = socket.create_connection(self.upstream)
            with self._lock:
                self.connections += 1
                self._open.extend((client, server))
            threading.Thread(target=self._pump, args=(client, server, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, "down"), daemon=True).start()


@contextmanager
def relay(upstream_endpoint: str) -> Iterator[Relay]:
    """A :class:`Relay` to ``http://127.0.0.1:PORT`` for the duration of the block."""
    host, _, port = upstream_endpoint.removeprefix("http://").partition(":")
    assert host == "127.0.0.1", "the relay only forwards to loopback"
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    state = Relay((host, int(port)), port=int(listener.getsockname()[1]))
    thread = threading.Thread(target=state._serve, args=(listener,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        with suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        for sock in state._open:
            with suppress(OSError):
                sock.close()
