"""Splitting a JSONL byte stream into lines, whatever the chunking.

Lines end in \\n or \\r\\n, and a chunk boundary may fall anywhere, including
between the \\r and the \\n: splitting on \\n alone and trimming one trailing
\\r is correct in every case.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    pending = b""
    for chunk in chunks:
        if not chunk:
            continue
        data = pending + chunk if pending else chunk
        lines = data.split(b"\n")
        pending = lines.pop()
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if line:
                yield line
    if pending.endswith(b"\r"):
        pending = pending[:-1]
    if pending:
        yield pending
