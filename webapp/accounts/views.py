"""Sign-up (as SIGNUP_MODE allows) and by invitation; log-in (Django's view, throttled), log-out (Django's); the account page."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib import messages as flash
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView, redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from webapp.accounts import retention_choice, throttle
from webapp.accounts.forms import SignupForm
from webapp.accounts.signup import (
    INVITATION,
    InvitationRefused,
    SignupRefused,
    account_register,
    invitation_check,
    signup_open,
)

BACKEND = "django.contrib.auth.backends.ModelBackend"


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("chat:index")
    if not settings.LOCAL_LOGIN:
        return _local_off(request)
    if not signup_open():
        return _refused(
            request,
            heading="Sign-up is closed",
            refusal=SignupRefused("signup_closed", "New accounts come by invitation: ask an administrator."),
            status=403,
        )
    return _signup_form(request, invitation_token=None)


@require_http_methods(["GET", "POST"])
def signup_invited(request: HttpRequest, token: str) -> HttpResponse:
    """An invitation's link: the sign-up form, whatever SIGNUP_MODE says, once, before it expires."""
    if request.user.is_authenticated:
        return redirect("chat:index")
    if not settings.LOCAL_LOGIN:
        return _local_off(request)
    try:
        invitation_check(token)
    except InvitationRefused as refused:
        return _invitation_refused(request, refused)
    return _signup_form(request, invitation_token=token)


def _signup_form(request: HttpRequest, *, invitation_token: str | None) -> HttpResponse:
    invited = invitation_token is not None
    form = SignupForm(request.POST or None, invited=invited)
    if request.method == "POST" and form.is_valid():
        try:
            registered = account_register(
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password1"],
                email=form.cleaned_data.get("email", ""),
                source=INVITATION if invited else "signup",
                invitation_token=invitation_token,
            )
        except InvitationRefused as refused:  # used by somebody else since the form was shown
            return _invitation_refused(request, refused)
        except SignupRefused as refused:
            form.add_error(None, refused.message)
        else:
            if registered.pending:
                return render(request, "accounts/pending.html", {"username": registered.user.get_username()})
            login(request, registered.user, backend=BACKEND)
            return redirect("chat:index")
    context = {"form": form, "invited": invited, "approval": settings.SIGNUP_MODE == "approval"}
    return render(request, "accounts/signup.html", context, status=400 if form.errors else 200)


def _invitation_refused(request: HttpRequest, refused: InvitationRefused) -> HttpResponse:
    status = 404 if refused.code == "invitation_unknown" else 410
    return _refused(request, heading="This invitation cannot be used", refusal=refused, status=status)


def _local_off(request: HttpRequest) -> HttpResponse:
    # LOCAL_LOGIN=0: accounts come from single sign-on only, so nobody makes a password here.
    refusal = SignupRefused(
        "local_login_off", "Accounts here come from single sign-on: use a button on the log-in page."
    )
    return _refused(request, heading="Sign-up is off", refusal=refusal, status=403)


def _refused(request: HttpRequest, *, heading: str, refusal: SignupRefused, status: int) -> HttpResponse:
    context = {"heading": heading, "code": refusal.code, "reason": refusal.message}
    return render(request, "accounts/refused.html", context, status=status)


def admin_login(request: HttpRequest) -> HttpResponse:
    """/admin/'s own password log-in, unless LOCAL_LOGIN=0: then the site's log-in page (its SSO buttons)."""
    if not settings.LOCAL_LOGIN:
        return redirect_to_login(request.GET.get("next", "/admin/"))
    return admin.site.login(request)


class ThrottledLoginView(LoginView):
    """Django's log-in, refusing with 429 and Retry-After after too many failures (webapp.accounts.throttle)."""

    redirect_authenticated_user = True

    def _who(self) -> dict[str, str]:
        # REMOTE_ADDR is the client's address when Daphne runs with --proxy-headers behind a proxy.
        return {
            "username": str(self.request.POST.get("username", ""))[:300],
            "address": self.request.META.get("REMOTE_ADDR", ""),
        }

    def get_context_data(self, **kwargs: object) -> dict[str, object]:
        return {
            **super().get_context_data(**kwargs),
            "sso_providers": settings.OIDC_PROVIDERS,
            # LOCAL_LOGIN=0 keeps the password form for the directory's passwords.
            "password_form": settings.LOCAL_LOGIN or bool(settings.LDAP_SERVER_URI),
        }

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not settings.LOCAL_LOGIN and not settings.LDAP_SERVER_URI:
            # The form is not shown then; a hand-made POST is refused before any password is checked.
            form = self.get_form_class()(request=request)
            return self.render_to_response(self.get_context_data(form=form, local_refused=True), status=403)
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
            days = retention_choice.check_retention_days(request.POST.get("retention_days"))
        except retention_choice.AccountInputError as refused:
            error = str(refused)
        else:
            retention_choice.account_retention_set(user=request.user, retention_days=days)
            flash.success(request, "Saved.")
            return redirect("account")
    context = {
        "error": error,
        "chosen": retention_choice.account_retention_days(request.user),
        "choices": retention_choice.retention_choices(),
        "deployment_days": settings.RETENTION_DAYS,
        "effective_days": retention_choice.effective_retention_days(request.user),
        "temporary_chat_hours": settings.TEMPORARY_CHAT_HOURS,
    }
    return render(request, "accounts/settings.html", context, status=400 if error else 200)
