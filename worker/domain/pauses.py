"""Why submission is paused, and how the pause ends.

Two kinds: the API refused the key (401/403), which clears itself once a cheap
authenticated call with the current key succeeds; and billing (402, a spend
limit, a `billing_error` result), which waits for a person to fix the account
and run `batchline resume`. The pause row stores the reason text; its kind is
read from it, so no schema change is needed.
"""

from __future__ import annotations

import re

KEY = "key"
BILLING = "billing"
_KEY_REFUSED = re.compile(r"HTTP 40[13]\b|authentication_error|permission_error")


def pause_kind(reason: str) -> str:
    return KEY if _KEY_REFUSED.search(reason) else BILLING


def how_it_ends(reason: str) -> str:
    if pause_kind(reason) == KEY:
        return (
            "resumes by itself once the API accepts the current ANTHROPIC_API_KEY "
            "(checked every reconcile run): fix the key and restart the workers"
        )
    return "fix billing or the spend limit in the Anthropic Console, then run `batchline resume`"


def describe(reason: str) -> str:
    """One line for status, doctor, the run terminal and the logs."""
    return f"submission paused ({pause_kind(reason)}): {reason}; {how_it_ends(reason)}"
