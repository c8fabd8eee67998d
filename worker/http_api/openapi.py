"""The OpenAPI document of `batchline serve` (served at /openapi.json; checked in beside this file).

Regenerate the checked-in copy after a change:
    python -m batchline.http_api.openapi > worker/http_api/openapi.json
"""

from __future__ import annotations

import json
from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}


def _answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    return out


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "invalid params or options, the enqueue's own message",
        401: "no or unknown bearer token",
        403: "the token's tenant scope forbids it",
        404: "not found (or another tenant's)",
        413: "body or JSONL line too large",
        415: "unsupported content type",
        429: "the intake queue is full; see Retry-After",
    }
    return {str(s): _answer(text[s], _ERROR) for s in statuses}


def document() -> dict[str, Any]:
    wait = {
        "name": "wait",
        "in": "query",
        "required": False,
        "description": "long-poll: answer when final, or after this many seconds (0-60)",
        "schema": {"type": "number", "minimum": 0, "maximum": 60},
    }
    request_answer = _answer(
        "the request's state; `result` (Batch API shape) once final",
        {"$ref": "#/components/schemas/RequestState"},
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "batchline HTTP intake", "version": "1"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["type", "error"],
                    "properties": {
                        "type": {"const": "error"},
                        "error": {
                            "type": "object",
                            "required": ["type", "message"],
                            "properties": {
                                "type": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
                "Accepted": {
                    "type": "object",
                    "required": ["id", "url"],
                    "properties": {
                        "id": {"type": "string"},
                        "url": {"type": "string"},
                        "key": {"type": "string"},
                        "custom_id": {"type": "string"},
                    },
                },
                "Envelope": {
                    "type": "object",
                    "description": "Messages API params with batchline's options (or bare params)",
                    "required": ["params"],
                    "properties": {
                        "params": {
                            "type": "object",
                            "description": "a Messages API request body (no stream)",
                        },
                        "key": {
                            "type": "string",
                            "description": "idempotency key (or the Idempotency-Key header)",
                        },
                        "tags": {"type": "object"},
                        "on_result": {"type": "string", "description": "a Celery task name"},
                        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
                        "priority": {
                            "type": "integer",
                            "minimum": -5,
                            "maximum": 5,
                            "description": "higher goes first when more is queued than a batch"
                            " takes (or the Batchline-Priority header)",
                        },
                        "betas": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "anthropic-beta names: allows beta parameters",
                        },
                        "deadline": {
                            "type": ["number", "string"],
                            "description": "seconds from now, or an ISO 8601 time with its "
                            "offset (or the Batchline-Deadline header): past it minus the "
                            "sync latency, the request is answered synchronously",
                        },
                    },
                },
                "RequestState": {
                    "type": "object",
                    "required": ["id", "state", "result"],
                    "properties": {
                        "id": {"type": "string"},
                        "state": {
                            "enum": [
                                "pending",
                                "queued",
                                "in_batch",
                                "succeeded",
                                "failed",
                                "canceled",
                                "expired",
                            ]
                        },
                        "key": {"type": ["string", "null"]},
                        "custom_id": {"type": ["string", "null"]},
                        "tags": {"type": "object"},
                        "attempts": {"type": "integer"},
                        "created_at": {"type": ["string", "null"]},
                        "finished_at": {"type": ["string", "null"]},
                        "result": {
                            "type": ["object", "null"],
                            "description": "a MessageBatchResult",
                        },
                    },
                },
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/requests": {
                "post": {
                    "summary": "Enqueue one request (JSON) or many (JSONL: create lines)",
                    "parameters": [
                        {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}},
                        {
                            "name": "Batchline-Tags",
                            "in": "header",
                            "schema": {"type": "string"},
                            "description": "a JSON object",
                        },
                        {
                            "name": "Batchline-On-Result",
                            "in": "header",
                            "schema": {"type": "string"},
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Envelope"}
                            },
                            "application/jsonl": {
                                "schema": {
                                    "type": "string",
                                    "description": "lines {custom_id, params,"
                                    " [tags, on_result, betas]}",
                                }
                            },
                        },
                    },
                    "responses": {
                        "202": _answer(
                            "one `Accepted` (and Location), or {requests: [Accepted]}",
                            {
                                "oneOf": [
                                    {"$ref": "#/components/schemas/Accepted"},
                                    {
                                        "type": "object",
                                        "properties": {
                                            "requests": {
                                                "type": "array",
                                                "items": {"$ref": "#/components/schemas/Accepted"},
                                            }
                                        },
                                    },
                                ]
                            },
                        ),
                        **_errors(400, 401, 403, 413, 415, 429),
                    },
                }
            },
            "/v1/requests/{request_id}": {
                "get": {
                    "summary": "A request's state and, when final, its result",
                    "parameters": [
                        {
                            "name": "request_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        wait,
                    ],
                    "responses": {"200": request_answer, **_errors(400, 401, 404)},
                }
            },
            "/v1/requests/by-key/{key}": {
                "get": {
                    "summary": "The same, found by idempotency key (a JSONL line's custom_id)",
                    "parameters": [
                        {
                            "name": "key",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        wait,
                    ],
                    "responses": {"200": request_answer, **_errors(400, 401, 404)},
                }
            },
            "/v1/batches": {
                "get": {
                    "summary": "Recent batches (unscoped tokens only)",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                        },
                        {"name": "state", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {"200": _answer("{data: [batch]}"), **_errors(400, 401, 403)},
                }
            },
            "/v1/batches/{batch_id}": {
                "get": {
                    "summary": "One batch, by batchline's id or msgbatch_ id (unscoped tokens)",
                    "parameters": [
                        {
                            "name": "batch_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {"200": _answer("the batch"), **_errors(401, 403, 404)},
                }
            },
            "/openapi.json": {
                "get": {
                    "security": [],
                    "summary": "This document",
                    "responses": {"200": _answer("OpenAPI 3.1")},
                }
            },
            "/metrics": {
                "get": {
                    "security": [],
                    "summary": "Prometheus metrics of this endpoint",
                    "responses": {"200": _answer("text exposition")},
                }
            },
            "/health": {
                "get": {"security": [], "summary": "Liveness", "responses": {"200": _answer("ok")}}
            },
        },
    }


if __name__ == "__main__":
    print(json.dumps(document(), indent=2, sort_keys=True))
