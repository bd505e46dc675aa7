"""The fast webhook receiver bench/webhooks.py delivers to (a helper: bench/run.py does not run it).

Answers 200 to every POST as soon as the body is read, counts deliveries and distinct webhook-ids, and
for each invoice.sealed notes how long after the invoice's issued_at (server time, same machine) it
arrived. GET /stats returns the figures; POST /reset clears them.
Usage: python bench/_webhook_receiver.py PORT
"""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime

import uvicorn

state: dict = {"count": 0, "ids": set(), "latencies": []}


async def _body(receive) -> bytes:  # noqa: ANN001
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


async def _answer(send, status: int, payload: bytes, content_type: bytes = b"text/plain") -> None:  # noqa: ANN001
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


async def app(scope, receive, send) -> None:  # noqa: ANN001
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = await _body(receive)
    if scope["method"] == "GET" and scope["path"] == "/stats":
        stats = {"count": state["count"], "unique": len(state["ids"]), "latencies": state["latencies"]}
        await _answer(send, 200, json.dumps(stats).encode(), b"application/json")
        return
    if scope["path"] == "/reset":
        state["count"], state["ids"], state["latencies"] = 0, set(), []
        await _answer(send, 200, b"{}", b"application/json")
        return
    arrived = time.time()
    headers = dict(scope["headers"])
    state["count"] += 1
    state["ids"].add(headers.get(b"webhook-id", b""))
    event = json.loads(body)
    if event.get("type") == "invoice.sealed":
        issued = datetime.fromisoformat(event["data"]["issued_at"].replace("Z", "+00:00")).timestamp()
        state["latencies"].append(arrived - issued)
    await _answer(send, 200, b"ok")


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
