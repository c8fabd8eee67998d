"""The intake's dead letters: listed with their reasons, and sent back to intake.

Intake copies an entry it cannot take in (or one request of a bundle) to the
dead-letter stream with a `reason` and the stream id it had, then acks it. Most
stay dead: an entry no `enqueue` wrote is as bad the second time. Some are worth
another try once their cause is fixed: the first request a bad deploy met (see
services.intake), or a request the database refused while misconfigured.
`requeue` moves such a letter back onto the intake stream, exactly as enqueued,
and intake judges it again (if still bad, it is dead-lettered again).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from batchline.adapters.intake_entries import StreamEntry, requests_in
from batchline.keys import RedisKeys

# The fields intake adds to a dead letter; the rest is the entry as it was.
ADDED_FIELDS = (b"reason", b"entry")

# Moves one letter back, or nothing if it is gone (another requeue took it):
# the XDEL decides, so two operators requeueing at once add it once. The extra
# requests of a bundle go back on the depth counter that intake's ack takes off.
# Flagged (`#!lua`), so a Redis past its maxmemory refuses it whole at the start:
# a script without flags whose first write is the XDEL would be let through, and
# its XADD with it, past the limit.
_REQUEUE = """#!lua
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
if tonumber(ARGV[2]) > 0 then redis.call('INCRBY', KEYS[3], ARGV[2]) end
return 1
"""

PAGE = 500


@dataclass(frozen=True)
class DeadLetter:
    letter_id: str  # its id in the dead-letter stream
    request_ids: list[str]
    reason: str
    entry_id: str  # the id it had in the intake stream


class DeadLetters:
    def __init__(self, client: redis.Redis, keys: RedisKeys) -> None:
        self._redis = client
        self._keys = keys
        self._requeue = client.register_script(_REQUEUE)

    def oldest(self, limit: int) -> list[DeadLetter]:
        return [_letter(i, f) for i, f in self._range("-", limit)]

    def all_ids(self) -> Iterator[str]:
        """Every letter's id, oldest first, read a page at a time."""
        start = "-"
        while page := self._range(start, PAGE):
            yield from (entry_id.decode() for entry_id, _ in page)
            start = "(" + page[-1][0].decode()

    def requeue(self, letter_ids: Sequence[str]) -> tuple[int, int]:
        """Move these letters back onto the intake stream; (letters, requests) moved.
        An id that names no letter (never did, or already moved) moves nothing."""
        letters = requests = 0
        for letter_id in letter_ids:
            found = self._range(letter_id, 1)
            if not found or found[0][0].decode() != letter_id:
                continue
            fields = {k: v for k, v in found[0][1].items() if k not in ADDED_FIELDS}
            held = requests_in(StreamEntry(found[0][0], fields))
            keys = [
                self._keys.dead_letters,
                self._keys.intake_stream,
                self._keys.intake_bundled_extra,
            ]
            flat = [x for pair in fields.items() for x in pair]
            if self._requeue(keys=keys, args=[letter_id, held - 1, *flat]):
                letters += 1
                requests += held
        return letters, requests

    def _range(self, start: str, count: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        entries: Any = self._redis.xrange(self._keys.dead_letters, start, "+", count=count)
        return list(entries)


def _letter(letter_id: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    ids = fields.get(b"id", b"").decode("utf-8", "replace")
    return DeadLetter(
        letter_id.decode(),
        ids.split(" ") if ids else [],
        fields.get(b"reason", b"").decode("utf-8", "replace"),
        fields.get(b"entry", b"").decode("utf-8", "replace"),
    )
