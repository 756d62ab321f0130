"""Helpers for the ServerTCP / ClientTCP / ListenAccept tests: a
non-blocking peer the kernel loop pumps, a TLS certificate made with the
``openssl`` command, and a blocking client run in a thread."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._wheels import run_until

__all__ = ["Peer", "Threaded", "make_certificate", "server_context"]


class Peer:
    """A client socket read without blocking while the kernel runs."""

    def __init__(self, port: int, host: str = "127.0.0.1", family: int = socket.AF_INET) -> None:
        if family == socket.AF_UNIX:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(host)
        else:
            self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.setblocking(False)
        self.data = b""
        self.eof = False
        self.reset = False

    def pump(self) -> None:
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    self.eof = True
                    return
                self.data += chunk
        except BlockingIOError:
            return
        except ConnectionResetError:
            self.eof = self.reset = True

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def lines(self) -> list[bytes]:
        return self.data.split(b"\r\n")[:-1]

    def wait_lines(self, n: int, timeout: float = 5.0) -> list[bytes]:
        def enough() -> bool:
            self.pump()
            return len(self.lines()) >= n or self.eof

        run_until(enough, timeout, f"{n} lines")
        return self.lines()

    def wait_data(self, predicate: Callable[[bytes], bool], timeout: float = 5.0) -> bytes:
        def done() -> bool:
            self.pump()
            return predicate(self.data) or self.eof

        run_until(done, timeout, "the data awaited")
        return self.data

    def wait_eof(self, timeout: float = 5.0) -> None:
        def closed() -> bool:
            self.pump()
            return self.eof

        run_until(closed, timeout, "the server to close the connection")

    def close(self) -> None:
        self.sock.close()

    def __del__(self) -> None:
        self.sock.close()


class Threaded:
    """Run ``func`` (a blocking client) in a thread while the kernel runs."""

    def __init__(self, func: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False

        def run() -> None:
            try:
                self.result = func()
            except BaseException as exc:  # handed to the test
                self.error = exc
            finally:
                self.done = True

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def wait(self, timeout: float = 10.0) -> Any:
        run_until(lambda: self.done, timeout, "the client thread")
        self.thread.join(5)
        if self.error is not None:
            raise self.error
        return self.result


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA certificate for localhost / 127.0.0.1."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def client_context(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    return context
