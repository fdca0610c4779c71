from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from webapp.accounts.views import admin_login
from webapp.health import healthz
from webapp.metrics.views import metrics

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="chat:index", permanent=False)),
    path("accounts/", include("webapp.accounts.urls")),
    # Before the chat's: /c/<id>/share/ is a share link's, not a conversation's.
    path("", include("webapp.sharing.urls")),
    path("c/", include("webapp.chat.urls")),
    path("moderation/", include("webapp.moderation.urls")),
    path("manage/", include("webapp.accounts.manage_urls")),
    path("usage/", include("webapp.usage.urls")),
    path("admin/login/", admin_login),  # before the admin's own: LOCAL_LOGIN=0 turns its password form off
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("", include("webapp.api.urls")),
]
