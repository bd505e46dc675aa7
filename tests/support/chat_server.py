"""A loopback server speaking the OpenAI chat-completions protocol (``POST /v1/chat/completions``), written from
the protocol, not from our client code: what Ollama, vLLM and llama.cpp's server answer. Each test sets what it
answers: an extraction (as JSON content for a ``response_format`` json_schema request, or as a call of the
request's one tool), a delay, an HTTP 500, or a body that is not JSON."""
from __future__ import annotations

import asyncio
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.server import asgi_in_thread


@dataclass
class ChatServer:
    url: str = ""
    answer: dict[str, Any] | None = None  # the object the model "returns"
    content: str | None = None  # raw assistant content instead (e.g. JSON breaking the schema)
    delay: float = 0.0
    status: int = 200
    broken_body: bool = False  # HTTP 200 whose body is not JSON
    requests: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        self.answer, self.content, self.delay, self.status, self.broken_body = None, None, 0.0, 200, False
        self.requests.clear()

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"


def _completion(body: dict[str, Any], message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "test"), "system_fingerprint": "fp_test",
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}


def build_app(state: ChatServer) -> Starlette:
    async def completions(request: Request) -> Response:
        body = await request.json()
        state.requests.append({"body": body, "authorization": request.headers.get("authorization")})
        if state.delay:
            await asyncio.sleep(state.delay)
        if state.status != 200:
            return JSONResponse({"error": {"message": "the model crashed", "type": "server_error", "code": None}},
                                status_code=state.status)
        if state.broken_body:
            return Response('{"id": "chatcmpl-test", "choices": [', media_type="application/json")
        text = state.content if state.content is not None else json.dumps(state.answer)
        tools = body.get("tools") or []
        if tools and (body.get("response_format") or {}).get("type") != "json_schema":
            call = {"id": "call_1", "type": "function",
                    "function": {"name": tools[0]["function"]["name"], "arguments": text}}
            return JSONResponse(_completion(body, {"role": "assistant", "content": None, "tool_calls": [call]},
                                            "tool_calls"))
        return JSONResponse(_completion(body, {"role": "assistant", "content": text}, "stop"))

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


@contextmanager
def chat_server() -> Iterator[ChatServer]:
    state = ChatServer()
    with asgi_in_thread(build_app(state)) as url:
        state.url = url
        yield state
