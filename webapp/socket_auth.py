"""The websockets' session and user: Channels' `AuthMiddlewareStack`, less its check on every message sent.

Channels' `SessionMiddleware` hands the application a `send` that, before
each message it passes on, asks whether the session changed, to save it and
set its cookie on an HTTP response. A websocket sends no HTTP response, so
on a socket that check only costs: 3.5 µs a message, paid for every `token`
event Daphne forwards (its frames were ~5% of Daphne's py-spy samples at 64
chats). Here the session is resolved as
Channels does, once, when the socket opens, and the socket's messages go to
the server untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from channels.auth import AuthMiddleware
from channels.sessions import CookieMiddleware, InstanceSessionWrapper, SessionMiddleware


class SocketSessionMiddleware(SessionMiddleware):
    """`scope["session"]` as Channels' `SessionMiddleware` sets it; a websocket's `send` passed through."""

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> Any:
        if scope["type"] != "websocket":
            return await super().__call__(scope, receive, send)
        wrapper = InstanceSessionWrapper(scope, send)
        await wrapper.resolve_session()
        return await self.inner(wrapper.scope, receive, send)


def socket_auth_stack(inner: Callable[..., Any]) -> CookieMiddleware:
    """Cookies, the session, then `scope["user"]`: `AuthMiddlewareStack`'s three layers, the session's own here."""
    return CookieMiddleware(SocketSessionMiddleware(AuthMiddleware(inner)))
