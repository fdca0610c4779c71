from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import include, path

LOGIN_PAGE = engines["django"].from_string(
    """<!doctype html><title>Test provider</title><h1>Test provider: sign in</h1>
<form method="post">{% csrf_token %}{{ form.as_p }}<input type="hidden" name="next" value="{{ next }}">
<button type="submit">Continue</button></form>"""
)


class ProviderLogin(LoginView):
    def render_to_response(self, context: dict, **kwargs: object) -> HttpResponse:
        request: HttpRequest = self.request
        return HttpResponse(LOGIN_PAGE.render(context, request))


urlpatterns = [
    path("login/", ProviderLogin.as_view(), name="login"),
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
]
