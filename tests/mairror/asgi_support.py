"""Driving an ASGI application in-process, as a server would, for the tests of mairror's ASGI layers."""

import asyncio


def run_asgi(app, scope: dict, messages: list[dict]) -> list[dict]:
    """One request through ``app``: the client sends ``messages``, then disconnects; returns what the app sent."""
    messages, sent = list(messages), []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def body_messages(chunks, more_body: bool = False) -> list[dict]:
    """The ``http.request`` messages of a body sent in ``chunks``; ``more_body``: the last promises more."""
    return [
        {"type": "http.request", "body": chunk, "more_body": more_body or i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
