"""Writing a results stream (HTTP chunked), with the stream faults applied.

Lines are gathered into large chunks for throughput; the faults re-cut them:
CRLF line endings, small random pieces flushed one by one (every CRLF split
between two pieces), a delay between pieces, or the connection closed after a
given number of body bytes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from io import BufferedIOBase

from .faults import FaultConfig

CHUNK_BYTES = 256 * 1024


class StreamCut(Exception):
    """The stream was cut on purpose; the connection must be closed."""


class ResultWriter:
    def __init__(self, wfile: BufferedIOBase, faults: FaultConfig, rng: random.Random) -> None:
        self._wfile = wfile
        self._faults = faults
        self._rng = rng
        self._sent = 0

    def write(self, lines: Iterable[bytes]) -> None:
        """Write every line, then the end of the chunked body."""
        crlf = self._faults.results_crlf
        buffer = bytearray()
        for line in lines:
            buffer += line[:-1] + b"\r\n" if crlf else line
            if len(buffer) >= CHUNK_BYTES:
                self._emit(bytes(buffer))
                buffer.clear()
        if buffer:
            self._emit(bytes(buffer))
        self._wfile.write(b"0\r\n\r\n")

    def _emit(self, data: bytes) -> None:
        faults = self._faults
        pieces = [data]
        if faults.results_split_chunks:
            pieces = _split(data, self._rng, faults.results_split_max_bytes)
        for piece in pieces:
            cut = faults.results_cut_after_bytes
            if cut is not None and self._sent + len(piece) >= cut:
                self._chunk(piece[: cut - self._sent])
                raise StreamCut
            self._chunk(piece)
            if faults.results_chunk_delay_seconds:
                time.sleep(faults.results_chunk_delay_seconds)

    def _chunk(self, piece: bytes) -> None:
        if not piece:
            return
        self._sent += len(piece)
        header = b"%x\r\n" % len(piece)
        if len(piece) < 65536:
            self._wfile.write(header + piece + b"\r\n")
        else:
            self._wfile.write(header)
            self._wfile.write(piece)
            self._wfile.write(b"\r\n")


def _split(data: bytes, rng: random.Random, max_bytes: int) -> list[bytes]:
    pieces = []
    start = 0
    while start < len(data):
        end = min(len(data), start + rng.randint(1, max_bytes))
        carriage = data.find(b"\r", start, end)
        if carriage != -1 and carriage + 1 < end:
            end = carriage + 1
        pieces.append(data[start:end])
        start = end
    return pieces
