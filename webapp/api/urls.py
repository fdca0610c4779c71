from django.urls import path

from webapp.api import v1, views

app_name = "api"

urlpatterns = [
    path("settings/api-keys/", views.api_keys, name="keys"),
    path("settings/api-keys/<int:key_id>/revoke/", views.api_key_revoke, name="revoke"),
    path("v1/models", v1.models, name="models"),
    path("v1/chat/completions", v1.chat_completions, name="chat_completions"),
    path("v1/completions", v1.completions, name="completions"),
]
