"""What the page's header may link to: the moderation dashboard and user management, by role; sign-up if local."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from webapp.accounts.access import can_manage_users, can_moderate


def access(request: HttpRequest) -> dict[str, object]:
    # Lazy: a page that never shows the header's links asks nothing.
    user = getattr(request, "user", None)
    return {
        "can_moderate": SimpleLazyObject(lambda: can_moderate(user)),
        "can_manage_users": SimpleLazyObject(lambda: can_manage_users(user)),
        "local_login": settings.LOCAL_LOGIN,  # LOCAL_LOGIN=0: no sign-up link, no password form
    }
