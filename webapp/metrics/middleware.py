"""Counts and times every HTTP request, labelled by its URL pattern (never the raw path: unbounded).

Static files (served by WhiteNoise before any URL is resolved) are one label,
`static`; anything else no pattern matched is `unmatched`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from webapp import metrics

UNMATCHED, STATIC = "unmatched", "static"


class RequestMetricsMiddleware:
    """First in MIDDLEWARE, so the time covers the whole stack; runs sync or async as Django calls it."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        self._record(request, response, started)  # type: ignore[arg-type]
        return response  # type: ignore[return-value]

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = await self.get_response(request)  # type: ignore[misc]
        self._record(request, response, started)
        return response

    @staticmethod
    def _record(request: HttpRequest, response: HttpResponse, started: float) -> None:
        match = getattr(request, "resolver_match", None)
        if match is not None and match.route:
            route = match.route
        else:
            route = STATIC if request.path.startswith(settings.STATIC_URL) else UNMATCHED
        metrics.http_request(
            method=request.method if request.method in KNOWN_METHODS else "other",
            route=route,
            status=response.status_code,
            seconds=time.perf_counter() - started,
        )


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
