"""Reading request bodies off the socket: Content-Length or chunked, with a size cap.

The cap is checked before reading when Content-Length says the body is too
big, and counted while reading a chunked body; either way the body is read to
its end and discarded, so the client, still sending, gets to read the 413.
"""

from __future__ import annotations

from email.message import Message
from io import BufferedIOBase

from .errors import ApiError

_PIECE = 1 << 20
_LINE = 4096


class BodyError(ApiError):
    """An error answered on a connection that is then closed (its framing is suspect)."""


class ClientGone(Exception):
    """The client closed the connection before sending its whole request."""


def too_large(limit: int) -> BodyError:
    return BodyError(
        "request_too_large", f"Request exceeds the maximum allowed number of bytes ({limit:,})"
    )


def read_body(rfile: BufferedIOBase, headers: Message, limit: int) -> bytes | bytearray:
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        return _read_chunked(rfile, limit)
    declared = headers.get("Content-Length")
    if declared is None:
        return b""
    try:
        length = int(declared)
    except ValueError:
        length = -1
    if length < 0:
        raise BodyError("invalid_request_error", "Invalid Content-Length header")
    if length > limit:
        _discard(rfile, length)
        raise too_large(limit)
    body = rfile.read(length)
    if len(body) < length:
        raise ClientGone
    return body


def _read_chunked(rfile: BufferedIOBase, limit: int) -> bytearray:
    body = bytearray()
    total = 0
    while size := _chunk_size(rfile):
        total += size
        if total > limit:
            _discard(rfile, size)
        else:
            piece = rfile.read(size)
            if len(piece) < size:
                raise ClientGone
            body += piece
        rfile.readline(_LINE)  # the CRLF closing the chunk
    while rfile.readline(_LINE) not in (b"\r\n", b"\n", b""):
        pass  # trailers
    if total > limit:
        raise too_large(limit)
    return body


def _chunk_size(rfile: BufferedIOBase) -> int:
    line = rfile.readline(_LINE)
    if not line:
        raise ClientGone
    try:
        return int(line.split(b";", 1)[0].strip(), 16)
    except ValueError:
        raise BodyError("invalid_request_error", "Malformed chunked request body") from None


def _discard(rfile: BufferedIOBase, length: int) -> None:
    while length > 0:
        piece = rfile.read(min(length, _PIECE))
        if not piece:
            raise ClientGone
        length -= len(piece)
