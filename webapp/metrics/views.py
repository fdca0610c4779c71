"""`/metrics`: every process's series in Prometheus' text format, for a bearer token or for loopback.

With METRICS_TOKEN set, a scrape needs `Authorization: Bearer <token>`
(401 without one, 403 with a wrong one; compared in constant time). Without
it, only a client on this machine is answered, and not through a proxy: a
request that a proxy forwarded arrives from loopback too, so one carrying a
forwarding header is refused.
"""

from __future__ import annotations

import glob
import hmac
import ipaddress
import os
import re

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from webapp.metrics.collectors import RedisStateCollector

FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-Ip")
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    refusal = check_access(request)
    if refusal is not None:
        return refusal
    body = generate_latest(process_registry()) + generate_latest(_redis_registry())
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


def check_access(request: HttpRequest) -> HttpResponse | None:
    """None when the scrape may proceed; else the refusal to send."""
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            refusal = _refuse(401, "A bearer token is required: Authorization: Bearer <METRICS_TOKEN>.")
            refusal["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return refusal
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            return _refuse(403, "Wrong metrics token.")
        return None
    if not _is_loopback(request.META.get("REMOTE_ADDR", "")) or any(
        name in request.headers for name in FORWARDING_HEADERS
    ):
        return _refuse(403, "Without METRICS_TOKEN set, /metrics answers only from this machine.")
    return None


def process_registry() -> CollectorRegistry:
    """This process's registry; in multiprocess mode, one that adds up every process's files."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return REGISTRY
    forget_dead_processes(path)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return registry


def forget_dead_processes(path: str) -> None:
    """Drop the live gauges (open sockets) of processes that ended without saying so (a crash)."""
    pids = {
        int(m.group(1))
        for f in glob.glob(os.path.join(path, "gauge_live*.db"))
        if (m := _LIVE_GAUGE_FILE.search(f))
    }
    for pid in pids:
        if not _alive(pid):
            multiprocess.mark_process_dead(pid, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _redis_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(RedisStateCollector())
    return registry


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _refuse(status: int, message: str) -> HttpResponse:
    return HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")
