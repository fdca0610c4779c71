"""webapp/socket_auth.py: a socket's session and user as Channels resolves them; its messages sent untouched."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from webapp.asgi import application
from webapp.chat.models import Conversation
from webapp.socket_auth import socket_auth_stack

pytestmark = [pytest.mark.django_db(transaction=True)]


class Inner:
    """An application that records the scope and the `send` it was called with, then sends one message."""

    def __init__(self) -> None:
        self.scope: dict[str, Any] = {}
        self.send: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope, self.send = scope, send
        self.user = await database_sync_to_async(lambda: scope["user"].username)()
        self.session_key = scope["session"].session_key
        await send({"type": "websocket.send", "text": "hello"})


def logged_in_cookie() -> tuple[str, str]:
    """A real login's session cookie, and whose it is."""
    user = get_user_model().objects.create_user(username="carol", password="x" * 12)
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value, user.username


async def call(scope_type: str, cookie: str | None) -> tuple[Inner, Any, list[dict]]:
    inner, sent = Inner(), []

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode())] if cookie else []
    scope = {"type": scope_type, "path": "/x/", "headers": headers}
    await socket_auth_stack(inner)(scope, None, send)
    return inner, send, sent


async def test_a_socket_gets_the_session_and_user_of_its_cookie_and_the_servers_own_send() -> None:
    cookie, username = await database_sync_to_async(logged_in_cookie)()
    inner, send, sent = await call("websocket", cookie)
    assert inner.user == username and inner.session_key == cookie
    assert inner.send is send  # nothing between the consumer and the server
    assert sent == [{"type": "websocket.send", "text": "hello"}]


async def test_a_socket_without_a_cookie_is_anonymous() -> None:
    inner, _, _ = await call("websocket", None)
    assert inner.user == "" and inner.session_key is None


async def test_http_keeps_channels_session_wrapper_that_saves_on_the_response() -> None:
    cookie, username = await database_sync_to_async(logged_in_cookie)()
    inner, send, sent = await call("http", cookie)
    assert inner.user == username
    assert inner.send is not send  # Channels' own: it saves a changed session with the response
    assert sent == [{"type": "websocket.send", "text": "hello"}]


async def test_the_served_application_lets_a_logged_in_owner_in_and_keeps_others_out() -> None:
    cookie, _ = await database_sync_to_async(logged_in_cookie)()
    owner = await database_sync_to_async(get_user_model().objects.get)(username="carol")
    conversation = await database_sync_to_async(Conversation.objects.create)(owner=owner)
    path = f"/ws/conversations/{conversation.id}/"
    origin = (b"origin", b"http://localhost")
    for headers, expected in (
        ([origin, (b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode())], None),
        ([origin, (b"cookie", f"{settings.SESSION_COOKIE_NAME}=not-a-session".encode())], 4401),
        ([origin], 4401),
    ):
        comm = WebsocketCommunicator(application, path, headers=headers)
        try:
            connected, _ = await comm.connect()
            assert connected
            if expected is None:
                assert await comm.receive_nothing(0.3)  # open: no close, and nothing live to snapshot
            else:
                assert (await comm.receive_output(5))["code"] == expected
        finally:
            await comm.disconnect()
