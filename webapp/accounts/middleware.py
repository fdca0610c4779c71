"""Sanctions on every request: a banned user's session ends, a warned user sees the warning once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from webapp.moderation.models import Sanction
from webapp.moderation.selectors import is_banned, unseen_warnings


class SanctionMiddleware:
    """After authentication: log a banned user out (to the login page); show new warnings on a page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated:
            if is_banned(user):
                logout(request)
                messages.error(request, "This account has been banned by a moderator.")
                return redirect_to_login(request.get_full_path())
            if request.method == "GET":
                self._show_warnings(request)
        return self.get_response(request)

    @staticmethod
    def _show_warnings(request: HttpRequest) -> None:
        warnings: list[Sanction] = list(unseen_warnings(request.user))
        for warning in warnings:
            reason = f": {warning.reason}" if warning.reason else "."
            messages.warning(request, f"A moderator has warned you{reason}")
        if warnings:
            # The message waits in the session until a page shows it, so it is marked seen now.
            Sanction.objects.filter(pk__in=[w.pk for w in warnings]).update(seen_at=timezone.now())


class BannedSocketMiddleware:
    """Inside the sockets' auth stack (webapp/socket_auth.py): a banned user's socket is treated as logged out."""

    def __init__(self, inner: Callable[..., Any]) -> None:
        self.inner = inner

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> Any:
        user = scope.get("user")
        if user is not None and user.is_authenticated and await database_sync_to_async(is_banned)(user):
            scope = {**scope, "user": AnonymousUser()}
        return await self.inner(scope, receive, send)
