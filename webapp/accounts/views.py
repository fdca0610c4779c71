"""Sign-up; log-in (Django's view, throttled) and log-out (Django's); the account page."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from webapp.accounts import selectors, services, throttle


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("chat:index")
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("chat:index")
    return render(request, "accounts/signup.html", {"form": form}, status=400 if form.errors else 200)


class ThrottledLoginView(LoginView):
    """Django's log-in, refusing with 429 and Retry-After after too many failures (webapp.accounts.throttle)."""

    redirect_authenticated_user = True

    def _who(self) -> dict[str, str]:
        # REMOTE_ADDR is the client's address when Daphne runs with --proxy-headers behind a proxy.
        return {
            "username": str(self.request.POST.get("username", ""))[:300],
            "address": self.request.META.get("REMOTE_ADDR", ""),
        }

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        wait_s = throttle.check_login_allowed(**self._who())
        if wait_s:
            # An unbound form: the password is not even checked while throttled.
            form = self.get_form_class()(request=request)
            response = self.render_to_response(
                self.get_context_data(form=form, throttled_s=wait_s), status=429
            )
            response["Retry-After"] = str(wait_s)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        throttle.login_failure_record(**self._who())
        return super().form_invalid(form)

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        throttle.login_failures_clear(**self._who())
        return super().form_valid(form)


@login_required
@require_http_methods(["GET", "POST"])
def account_settings(request: HttpRequest) -> HttpResponse:
    """The account page: how long to keep my conversations (within the deployment's limit)."""
    error = ""
    if request.method == "POST":
        try:
            days = services.check_retention_days(request.POST.get("retention_days"))
        except services.AccountInputError as refused:
            error = str(refused)
        else:
            services.account_retention_set(user=request.user, retention_days=days)
            flash.success(request, "Saved.")
            return redirect("account")
    context = {
        "error": error,
        "chosen": selectors.account_retention_days(request.user),
        "choices": selectors.retention_choices(),
        "deployment_days": settings.RETENTION_DAYS,
        "effective_days": selectors.effective_retention_days(request.user),
        "temporary_chat_hours": settings.TEMPORARY_CHAT_HOURS,
    }
    return render(request, "accounts/settings.html", context, status=400 if error else 200)
