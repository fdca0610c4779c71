from django.urls import path

from webapp.moderation.consumers import ModeratorsConsumer

websocket_urlpatterns = [
    path("ws/moderation/", ModeratorsConsumer.as_asgi()),
]
