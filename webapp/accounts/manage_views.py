"""User management at /manage/, for administrators: people, groups and limits, invitations (docs/identity.md).

Thin: each POST calls one service and goes back to its page with what
happened (post/redirect/get); refused input is said there and changes
nothing. Anonymous visitors log in first; everybody below administrator gets 403.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp.accounts import selectors, services
from webapp.accounts.access import LIMIT_FIELDS, administrator_required, default_limits
from webapp.accounts.models import Role
from webapp.accounts.services import AccountInputError
from webapp.accounts.signup import MAX_INVITATION_DAYS, SignupRefused, invitation_create

PAGE_SIZE = 50
# The session key that carries a new invitation's link from the POST to the page after it.
NEW_LINK = "manage_new_invitation"


def _person(user_id: int) -> AbstractBaseUser:
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        raise Http404("No such person.")
    return user


def _group(group_id: int) -> Group:
    group = Group.objects.filter(pk=group_id).first()
    if group is None:
        raise Http404("No such group.")
    return group


@administrator_required
@require_GET
def people(request: HttpRequest) -> HttpResponse:
    query, status = request.GET.get("q", ""), request.GET.get("status", "all")
    if status not in selectors.STATUSES:
        status = "all"
    page = Paginator(selectors.people_matching(query=query, status=status), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {
        "rows": selectors.people_rows(list(page.object_list)),
        "page": page,
        "query": query[: selectors.MAX_QUERY_CHARS],
        "status": status,
        "statuses": selectors.STATUSES,
        "pending_count": selectors.people_matching(status="pending").count(),
        "signup_mode": settings.SIGNUP_MODE,
        "current": "people",
    }
    return render(request, "manage/people.html", context)


@administrator_required
@require_GET
def person(request: HttpRequest, user_id: int) -> HttpResponse:
    user = _person(user_id)
    member_of = set(user.groups.values_list("pk", flat=True))
    context = {
        "row": selectors.people_rows([user])[0],
        "roles": Role.values,
        "groups": [(group, group.pk in member_of) for group in Group.objects.order_by("name")],
        "history": selectors.person_history(user)[:50],
        "identities": user.sso_identities.order_by("provider"),
        "current": "people",
    }
    return render(request, "manage/person.html", context)


def _person_action(
    act: Callable[[HttpRequest, AbstractBaseUser], object], done: str
) -> Callable[[HttpRequest, int], HttpResponse]:
    """A POST on one person: `act` calls one service; back to their page with `done` or the refusal."""

    @administrator_required
    @require_POST
    def view(request: HttpRequest, user_id: int) -> HttpResponse:
        user = _person(user_id)
        try:
            result = act(request, user)
        except AccountInputError as error:
            flash.error(request, f"{error.message} Nothing was changed.")
        else:
            flash.success(request, done.format(name=user.get_username(), result=result))
        return redirect("manage:person", user_id=user.pk)

    return view


person_role = _person_action(
    lambda request, user: services.account_set_role(
        administrator=request.user, user=user, role=request.POST.get("role")
    ),
    "{name} is now {result}.",
)
person_groups = _person_action(
    lambda request, user: services.account_set_groups(
        administrator=request.user, user=user, group_ids=request.POST.getlist("groups")
    ),
    "The groups of {name} are saved.",
)
person_deactivate = _person_action(
    lambda request, user: services.account_deactivate(administrator=request.user, user=user),
    "{name} is deactivated; their open chats were closed.",
)
person_reactivate = _person_action(
    lambda request, user: services.account_reactivate(administrator=request.user, user=user),
    "{name} can log in again.",
)
person_approve = _person_action(
    lambda request, user: services.account_approve(administrator=request.user, user=user),
    "{name} is approved and can log in.",
)
person_decline = _person_action(
    lambda request, user: services.account_decline(administrator=request.user, user=user),
    "{name}'s sign-up is declined.",
)


@administrator_required
@require_http_methods(["GET", "POST"])
def groups(request: HttpRequest) -> HttpResponse:
    """Every group with its limits; POST creates one."""
    if request.method == "POST":
        return _save_group(request, group=None)
    context = {"groups": selectors.groups_with_limits(), "defaults": _defaults(), "current": "groups"}
    return render(request, "manage/groups.html", context)


@administrator_required
@require_POST
def group_update(request: HttpRequest, group_id: int) -> HttpResponse:
    return _save_group(request, group=_group(group_id))


def _save_group(request: HttpRequest, *, group: Group | None) -> HttpResponse:
    limits = {name: request.POST.get(name) for name in LIMIT_FIELDS}
    try:
        saved = services.group_save(
            administrator=request.user, group=group, name=request.POST.get("name"), limits=limits
        )
    except AccountInputError as error:
        flash.error(request, f"{error.message} Nothing was changed.")
    else:
        flash.success(request, f"Group “{saved.name}” saved.")
    return redirect("manage:groups")


def _defaults() -> dict[str, object]:
    return vars(default_limits())


@administrator_required
@require_http_methods(["GET", "POST"])
def invitations(request: HttpRequest) -> HttpResponse:
    """Recent invitations; POST makes one, whose link is shown once."""
    if request.method == "POST":
        try:
            group_id = request.POST.get("group") or None
            group = services.check_groups([group_id])[0] if group_id else None
            days = request.POST.get("days", "")
            if not days.isascii() or not days.isdigit():
                raise SignupRefused("invalid_days", f"An invitation lasts 1 to {MAX_INVITATION_DAYS} days.")
            _, token = invitation_create(
                administrator=request.user, days=int(days), note=request.POST.get("note", ""), group=group
            )
        except (AccountInputError, SignupRefused) as error:
            flash.error(request, f"{error.message} No invitation was made.")
        else:
            request.session[NEW_LINK] = request.build_absolute_uri(
                reverse("signup_invited", kwargs={"token": token})
            )
        return redirect("manage:invitations")
    context = {
        "invitations": selectors.recent_invitations(),
        "new_link": request.session.pop(NEW_LINK, None),
        "groups": Group.objects.order_by("name"),
        "default_days": settings.INVITATION_DAYS,
        "max_days": MAX_INVITATION_DAYS,
        "current": "invitations",
    }
    response = render(request, "manage/invitations.html", context)
    response["Cache-Control"] = "no-store"  # the one page that shows a link
    return response
