"""The seed notebook's two examples, as requests batchline enqueues.

"Batch Processing with Message Batches API" (Anthropic cookbook): four plain
questions; then a plain question, a system prompt, a multi-turn conversation
and an image, in one batch. `batchline demo` replays them, and the acceptance
tests run them through real workers.
"""

from __future__ import annotations

from typing import Any

MODEL = "claude-3-5-sonnet-20241022"
# A 4x4 orange PNG: small enough to inline, real enough to decode.
TINY_PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAEElEQVR4nGP438AARwzE"
    "cQB+ohfxXaFgBQAAAABJRU5ErkJggg=="
)

QUESTIONS = [
    "How do solar panels convert sunlight into electricity?",
    "What's the difference between mutual funds and ETFs?",
    "What is a pick and roll in basketball?",
    "Why do leaves change color in autumn?",
]


def _ask(content: Any, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 1024, "messages": content, **extra}


def example_1() -> dict[str, dict[str, Any]]:
    """custom_id -> params: the four questions."""
    return {
        f"question-{i}": _ask([{"role": "user", "content": q}]) for i, q in enumerate(QUESTIONS)
    }


def example_2() -> dict[str, dict[str, Any]]:
    """custom_id -> params: plain, image, system prompt and multi-turn in one batch."""
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": TINY_PNG_BASE64},
    }
    return {
        "simple-question": _ask([{"role": "user", "content": "What is quantum computing?"}]),
        "image-analysis": _ask(
            [{"role": "user", "content": [image, {"type": "text", "text": "Describe this image."}]}]
        ),
        "system-prompt": _ask(
            [{"role": "user", "content": "How would you explain gravity?"}],
            system="You are a helpful science teacher who explains things to 5-year-olds.",
        ),
        "multi-turn": _ask(
            [
                {"role": "user", "content": "What is DNA?"},
                {"role": "assistant", "content": "DNA is the molecule that carries genes."},
                {"role": "user", "content": "How does DNA replication work?"},
            ]
        ),
    }
