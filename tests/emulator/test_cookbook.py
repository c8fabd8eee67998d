"""The two examples of the seed cookbook ("Batch Processing with Message Batches API"),
end to end through the SDK, polling as the notebook does."""

from __future__ import annotations

import time

import anthropic
import pytest
from anthropic.types.messages import MessageBatch

from tests.emulator.helpers import MODEL, TINY_PNG, reply_text, strict_batch

pytestmark = pytest.mark.emulator


def _poll_until_ended(client: anthropic.Anthropic, batch_id: str) -> MessageBatch:
    deadline = time.monotonic() + 10
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        strict_batch(batch)
        if batch.processing_status == "ended":
            return batch
        assert batch.request_counts.processing == 4, "counts only move once the batch ends"
        assert time.monotonic() < deadline, "batch did not end"
        time.sleep(0.05)


def test_cookbook__example_1_basic_batch_of_four_questions(
    emulator_client: anthropic.Anthropic,
) -> None:
    questions = [
        "How do solar panels convert sunlight into electricity?",
        "What's the difference between mutual funds and ETFs?",
        "What is a pick and roll in basketball?",
        "Why do leaves change color in autumn?",
    ]
    requests = [
        {
            "custom_id": f"question-{i}",
            "params": {
                "model": MODEL,
                "max_tokens": 1024,
                "messages": [{"role": "user", "content": q}],
            },
        }
        for i, q in enumerate(questions)
    ]

    created = emulator_client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    batch = _poll_until_ended(emulator_client, created.id)
    results = {r.custom_id: r for r in emulator_client.messages.batches.results(batch.id)}

    assert created.processing_status == "in_progress"
    assert batch.request_counts.succeeded == 4
    assert batch.request_counts.errored == 0
    assert batch.ended_at is not None
    for i, q in enumerate(questions):
        assert q in reply_text(results[f"question-{i}"])


def test_cookbook__example_2_simple_system_multi_turn_and_image_in_one_batch(
    emulator_client: anthropic.Anthropic,
) -> None:
    requests = [
        {
            "custom_id": "simple-question",
            "params": {
                "model": MODEL,
                "max_tokens": 1024,
                "messages": [{"role": "user", "content": "What is quantum computing?"}],
            },
        },
        {
            "custom_id": "image-analysis",
            "params": {
                "model": MODEL,
                "max_tokens": 1024,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": TINY_PNG,
                                },
                            },
                            {"type": "text", "text": "Describe this image."},
                        ],
                    }
                ],
            },
        },
        {
            "custom_id": "system-prompt",
            "params": {
                "model": MODEL,
                "max_tokens": 1024,
                "system": "You are a helpful science teacher.",
                "messages": [{"role": "user", "content": "Explain gravity to a 5-year-old."}],
            },
        },
        {
            "custom_id": "multi-turn",
            "params": {
                "model": MODEL,
                "max_tokens": 1024,
                "messages": [
                    {"role": "user", "content": "What is DNA?"},
                    {
                        "role": "assistant",
                        "content": "DNA is a molecule that carries genetic information.",
                    },
                    {"role": "user", "content": "How does it replicate?"},
                ],
            },
        },
    ]

    created = emulator_client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    batch = _poll_until_ended(emulator_client, created.id)
    results = {r.custom_id: r for r in emulator_client.messages.batches.results(batch.id)}

    assert batch.request_counts.succeeded == 4
    assert "quantum computing" in reply_text(results["simple-question"])
    assert "image/png" in reply_text(results["image-analysis"])
    assert "science teacher" in reply_text(results["system-prompt"])
    assert "3 messages" in reply_text(results["multi-turn"])
    assert "How does it replicate?" in reply_text(results["multi-turn"])
    usage = {k: r.result.message.usage for k, r in results.items()}  # type: ignore[union-attr]
    assert usage["image-analysis"].input_tokens > usage["simple-question"].input_tokens
    assert usage["multi-turn"].input_tokens > usage["simple-question"].input_tokens
