"""The errors the producer API raises besides InvalidRequest; nothing from redis-py escapes.

QueueFull          the intake queue is at its size limit: retry later (nothing was written)
BrokerUnavailable  Redis could not be reached (a ConnectionError)
BrokerTimeout      Redis did not answer in time (both a BrokerUnavailable and a TimeoutError)
RequestLost        accepted, then lost with Redis before reaching SQL: enqueue it again
"""

from __future__ import annotations


class QueueFull(Exception):
    """The intake queue, or Redis's memory, is at its limit; nothing was enqueued."""


class BrokerUnavailable(ConnectionError):
    """Redis (or, under durable enqueue, the database) could not be reached or refused
    the write; the message says which. A ConnectionError."""


class BrokerTimeout(BrokerUnavailable, TimeoutError):
    """Redis did not answer within BATCHLINE_REDIS_SOCKET_TIMEOUT_SECONDS."""


class RequestLost(Exception):
    """The request was accepted but is in neither Redis nor SQL: Redis lost it."""

    def __init__(self, request_id: str) -> None:
        super().__init__(
            f"request {request_id} was accepted but Redis lost it before it reached SQL "
            "(restart or flush without persistence): enqueue it again"
        )
        self.request_id = request_id
