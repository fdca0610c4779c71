"""The ASGI entry point Daphne serves: HTTP to Django, websockets to the chat consumers."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
django_asgi_app = get_asgi_application()  # sets Django up before the consumers import models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from webapp.accounts.middleware import BannedSocketMiddleware  # noqa: E402
from webapp.chat.routing import websocket_urlpatterns  # noqa: E402
from webapp.moderation.routing import websocket_urlpatterns as moderation_urlpatterns  # noqa: E402
from webapp.socket_auth import socket_auth_stack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            socket_auth_stack(
                BannedSocketMiddleware(URLRouter(websocket_urlpatterns + moderation_urlpatterns))
            )
        ),
    }
)
