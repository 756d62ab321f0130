"""kernelish.drivers.SysRW: POE::Driver::SysRW on real pipes and sockets (POE-SEMANTICS 7.4)."""

from __future__ import annotations

import array
import errno
import os
import select
import signal
import socket
import struct
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from kernelish._params import ParameterError
from kernelish.drivers import Driver, SysRW


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    yield read_fd, write_fd
    for fd in (read_fd, write_fd):
        try:
            os.close(fd)
        except OSError:
            pass


@pytest.fixture
def socketpair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair()
    left.setblocking(False)
    right.setblocking(False)
    with left, right:
        yield left, right


@pytest.fixture
def no_sigpipe() -> Iterator[None]:
    # Writing to a closed peer must give EPIPE, not kill the test process.
    previous = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGPIPE, previous)


# -- parameters ----------------------------------------------------------------------------


def test_block_size_default_and_both_spellings() -> None:
    assert SysRW().block_size == 65536
    assert SysRW(BlockSize=10).block_size == 10
    assert SysRW(block_size=20).block_size == 20


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"BlockSize": 0}, "SysRW: BlockSize must be greater than 0 (got 0)"),
        ({"block_size": -5}, "SysRW: BlockSize must be greater than 0 (got -5)"),
        ({"BlockSize": "big"}, "SysRW: BlockSize must be int (got 'big')"),
        ({"BlockSiz": 10}, "SysRW: unknown parameter 'BlockSiz'"),
        (
            {"BlockSize": 1, "block_size": 2},
            "SysRW: parameter 'BlockSize' given twice (as 'BlockSize' and 'block_size')",
        ),
    ],
)
def test_parameter_errors(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ParameterError) as info:
        SysRW(**params)
    assert str(info.value) == message


def test_is_a_driver() -> None:
    assert isinstance(SysRW(), Driver)


# -- get -----------------------------------------------------------------------------------


def test_get_on_pipe_data_eagain_eof(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    driver = SysRW()
    assert driver.get(read_fd) == []
    os.write(write_fd, b"hello")
    assert driver.get(read_fd) == [b"hello"]
    assert driver.get(read_fd) == []
    os.close(write_fd)
    assert driver.get(read_fd) is None


def test_get_reads_at_most_block_size(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    os.write(write_fd, b"0123456789abc")
    driver = SysRW(BlockSize=10)
    assert driver.get(read_fd) == [b"0123456789"]
    assert driver.get(read_fd) == [b"abc"]


def test_get_on_socket_object(socketpair: tuple[socket.socket, socket.socket]) -> None:
    left, right = socketpair
    driver = SysRW()
    assert driver.get(right) == []
    left.sendall(b"ping")
    assert driver.get(right) == [b"ping"]
    left.close()
    assert driver.get(right) is None


def test_get_treats_eintr_as_no_data(
    pipe: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(fd: int, size: int) -> bytes:
        raise InterruptedError(errno.EINTR, "Interrupted system call")

    monkeypatch.setattr(os, "read", interrupted)
    assert SysRW().get(pipe[0]) == []


def test_get_raises_on_connection_reset() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        with client:
            peer, _ = server.accept()
            # Linger 0: close() sends a RST instead of a FIN.
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            peer.close()
            client.setblocking(False)
            assert select.select([client], [], [], 5)[0]
            with pytest.raises(OSError) as info:
                SysRW().get(client)
            assert info.value.errno == errno.ECONNRESET


# -- put and flush -------------------------------------------------------------------------


def test_put_counts_and_skips_empty_chunks(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    driver = SysRW()
    assert driver.put([b"ab", b""]) == 2
    assert driver.put([bytearray(b"cd"), memoryview(b"ef"), b""]) == 6
    assert driver.get_out_messages_buffered() == 3
    assert driver.get_out_octets_buffered() == 6
    assert driver.flush(write_fd) == 0
    assert driver.get_out_messages_buffered() == 0
    assert driver.get_out_octets_buffered() == 0
    assert os.read(read_fd, 100) == b"abcdef"


def test_put_copies_mutable_buffers(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    driver = SysRW()
    scratch = bytearray(b"xy")
    wide = memoryview(array.array("H", [1, 2]))
    assert driver.put([scratch, wide]) == 2 + 4
    scratch[:] = b"zz"
    driver.flush(write_fd)
    assert os.read(read_fd, 100) == b"xy" + array.array("H", [1, 2]).tobytes()


def test_flush_of_empty_queue_is_a_no_op(pipe: tuple[int, int]) -> None:
    assert SysRW().flush(pipe[1]) == 0


def test_flush_stops_quietly_when_the_pipe_is_full(pipe: tuple[int, int]) -> None:
    _read_fd, write_fd = pipe
    driver = SysRW()
    payload = b"x" * (4 * 1024 * 1024)
    driver.put([payload])
    left = driver.flush(write_fd)
    assert 0 < left < len(payload)
    assert driver.get_out_octets_buffered() == left
    assert driver.get_out_messages_buffered() == 1
    # Nothing more fits: flush makes no progress and still does not raise.
    assert driver.flush(write_fd) == left


def test_small_chunks_are_coalesced_into_few_writes(
    pipe: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    read_fd, write_fd = pipe
    calls: list[int] = []
    real_write = os.write

    def counting_write(fd: int, data: Any) -> int:
        calls.append(len(data))
        return real_write(fd, data)

    driver = SysRW()
    driver.put([b"%04d" % n for n in range(1000)])
    monkeypatch.setattr(os, "write", counting_write)
    assert driver.flush(write_fd) == 0
    monkeypatch.undo()
    assert calls == [4000]
    assert driver.get_out_messages_buffered() == 0
    assert os.read(read_fd, 10000) == b"".join(b"%04d" % n for n in range(1000))


def _pump(driver: SysRW, writer: socket.socket, reader: socket.socket, received: bytearray) -> int:
    """Flush ``driver`` into ``writer`` while draining ``reader`` into ``received``.

    Returns the number of flush() calls it took.
    """
    size = len(received)
    view = memoryview(received)
    got = 0
    flushes = 0
    sink = SysRW()
    while got < size:
        left = driver.flush(writer)
        flushes += 1
        assert left == driver.get_out_octets_buffered()
        assert select.select([reader], [], [], 5)[0]
        while chunks := sink.get(reader):
            view[got : got + len(chunks[0])] = chunks[0]
            got += len(chunks[0])
    view.release()
    assert driver.flush(writer) == 0
    return flushes


def test_ten_megabytes_through_a_socketpair_in_partial_writes(
    socketpair: tuple[socket.socket, socket.socket],
) -> None:
    writer, reader = socketpair
    writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    payload = bytes(range(256)) * (10 * 1024 * 1024 // 256)
    driver = SysRW()
    assert driver.put([payload]) == len(payload)

    received = bytearray(len(payload))
    tracemalloc.start()
    try:
        flushes = _pump(driver, writer, reader, received)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == payload
    assert flushes > 10  # the socket really took it in many partial writes
    # Partial writes go through a memoryview: copying the unsent rest each time would
    # allocate megabytes (and take quadratic time).
    assert peak < 2 * 1024 * 1024
    assert driver.get_out_messages_buffered() == 0


def test_many_small_chunks_through_a_socketpair(
    socketpair: tuple[socket.socket, socket.socket],
) -> None:
    writer, reader = socketpair
    chunks = [b"%07d\n" % n for n in range(200_000)]  # 1.6 MB in 8-octet chunks
    driver = SysRW()
    driver.put(chunks)
    received = bytearray(8 * len(chunks))
    _pump(driver, writer, reader, received)
    assert received == b"".join(chunks)


def test_flush_raises_epipe_and_keeps_the_queue(pipe: tuple[int, int], no_sigpipe: None) -> None:
    read_fd, write_fd = pipe
    os.close(read_fd)
    driver = SysRW()
    driver.put([b"lost"])
    with pytest.raises(OSError) as info:
        driver.flush(write_fd)
    assert info.value.errno == errno.EPIPE
    assert driver.get_out_octets_buffered() == 4


def test_flush_to_closed_socket_peer_raises(
    socketpair: tuple[socket.socket, socket.socket], no_sigpipe: None
) -> None:
    writer, reader = socketpair
    reader.close()
    driver = SysRW()
    driver.put([b"hello"])
    with pytest.raises(OSError) as info:
        driver.flush(writer)
    assert info.value.errno in (errno.EPIPE, errno.ECONNRESET)
