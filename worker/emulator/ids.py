"""Identifiers shaped like the API's: `msgbatch_01…`, `msg_01…`, `req_01…`, `toolu_01…`."""

from __future__ import annotations

import hashlib
import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TAIL = 22
# Maps each byte to a base62 character (slightly uneven, which ids can afford).
_BYTE_TO_CHAR = bytes(ord(_ALPHABET[b % len(_ALPHABET)]) for b in range(256))


def random_id(prefix: str) -> str:
    return f"{prefix}_01" + "".join(secrets.choice(_ALPHABET) for _ in range(_TAIL))


def derived_id(prefix: str, *parts: bytes) -> str:
    """The same parts always give the same id (replies must be reproducible)."""
    digest = hashlib.blake2b(b"\x00".join(parts), digest_size=_TAIL).digest()
    return f"{prefix}_01" + digest.translate(_BYTE_TO_CHAR).decode()


def batch_id() -> str:
    return random_id("msgbatch")


def request_id() -> str:
    return random_id("req")
