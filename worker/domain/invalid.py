"""The error every check at the door raises: its own module so that each rule's
module (validation, deadlines, scheduling) can raise it without importing
another's."""

from __future__ import annotations


class InvalidRequest(ValueError):
    """The request cannot be enqueued; the message says why."""
