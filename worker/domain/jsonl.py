"""Splitting a JSONL byte stream into lines, whatever the chunking.

Lines end in \\n or \\r\\n, and a chunk boundary may fall anywhere, including
between the \\r and the \\n: splitting on \\n alone and trimming one trailing
\\r is correct in every case.

A line is held in pieces until its newline comes and joined once, so the work
and memory are linear in the line. A line longer than `max_bytes` is not held:
it comes out as an `Overlong` (its first HEAD_BYTES, enough to name its
request) as soon as it passes the limit, so a line that never ends still
names its request, and the rest of it is skipped to its newline.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

HEAD_BYTES = 4096
DEFAULT_MAX_LINE_BYTES = 64 << 20


class Overlong(NamedTuple):
    head: bytes  # the line's first HEAD_BYTES
    length: int  # how much of it had come when it passed the limit


class _OpenLine:
    """The line still waiting for its newline."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.parts: list[bytes] = []
        self.size = 0
        self.skipping = False  # the line passed max_bytes and was reported

    def add(self, piece: bytes) -> Overlong | None:
        """Hold `piece`; the Overlong when the line has just passed the limit."""
        if self.skipping:
            return None
        self.size += len(piece)
        self.parts.append(piece)
        if self.size <= self.max_bytes:
            return None
        head = b"".join(self.parts)[:HEAD_BYTES]
        self.parts, self.skipping = [], True
        return Overlong(head, self.size)

    def close(self, last: bytes) -> bytes | Overlong | None:
        """The whole line, ending with `last`; the open line starts afresh."""
        over = self.add(last)
        skipped = self.skipping and over is None
        line = b"".join(self.parts)
        self.parts, self.size, self.skipping = [], 0, False
        if over is not None or skipped:
            return over
        return _trimmed(line, self.max_bytes)


def _trimmed(line: bytes, max_bytes: int) -> bytes | Overlong | None:
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line:
        return None
    if len(line) > max_bytes:
        return Overlong(line[:HEAD_BYTES], len(line))
    return line


def iter_lines(
    chunks: Iterable[bytes], max_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Iterator[bytes | Overlong]:
    open_line = _OpenLine(max_bytes)
    for chunk in chunks:
        if not chunk:
            continue
        lines = chunk.split(b"\n")
        if len(lines) == 1:
            over = open_line.add(chunk)
            if over is not None:
                yield over
            continue
        first = open_line.close(lines[0])
        if first is not None:
            yield first
        for line in lines[1:-1]:
            done = _trimmed(line, max_bytes)
            if done is not None:
                yield done
        if lines[-1] and (over := open_line.add(lines[-1])) is not None:
            yield over
    last = open_line.close(b"")
    if last is not None:
        yield last
