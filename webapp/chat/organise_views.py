"""Organising from the list page and the sidebar: folders and bulk actions. Thin: parse, call, redirect.

Plain forms, so everything works without script; a refusal comes back as a
message at the top of the page it came from, and changes nothing.
"""

from __future__ import annotations

from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from webapp.chat import organise
from webapp.chat.models import Folder
from webapp.chat.selectors import FolderNotFound, folder_for_user, optional_folder
from webapp.chat.services import ChatInputError

DONE = {
    "move": "Moved",
    "archive": "Archived",
    "unarchive": "Unarchived",
    "pin": "Pinned",
    "unpin": "Unpinned",
    "delete": "Deleted",
}


@login_required
@require_POST
def folder_new(request: HttpRequest) -> HttpResponse:
    try:
        folder = organise.folder_create(owner=request.user, name=request.POST.get("name"))
    except ChatInputError as error:
        flash.error(request, error.message)
        return redirect("chat:index")
    return redirect(f"{reverse('chat:index')}?folder={folder.id}")


@login_required
@require_POST
def folder_rename(request: HttpRequest, folder_id: str) -> HttpResponse:
    folder = _own_folder(request, folder_id)
    try:
        organise.folder_rename(folder=folder, name=request.POST.get("name"))
    except ChatInputError as error:
        flash.error(request, error.message)
    return redirect(f"{reverse('chat:index')}?folder={folder.id}")


@login_required
@require_POST
def folder_delete(request: HttpRequest, folder_id: str) -> HttpResponse:
    folder = _own_folder(request, folder_id)
    organise.folder_delete(folder=folder)
    flash.success(request, f"Deleted the folder “{folder}”; its conversations are kept, in no folder.")
    return redirect("chat:index")


@login_required
@require_POST
def conversations_bulk(request: HttpRequest) -> HttpResponse:
    """One action on the chosen conversations; a delete is confirmed on a page of its own first."""
    action = request.POST.get("action", "")
    ids = request.POST.getlist("conversation")
    back = _back(request)
    try:
        folder = _destination(request) if action == "move" else None
        if action == "delete" and request.POST.get("confirm") != "1":
            chosen = organise.check_bulk_ids(owner=request.user, conversation_ids=ids)
            return render(request, "chat/bulk_delete.html", {"conversations": chosen, "next": back})
        count = organise.conversations_bulk(
            owner=request.user, action=action, conversation_ids=ids, folder=folder
        )
    except ChatInputError as error:
        flash.error(request, error.message)
        return redirect(back)
    plural = "conversation" if count == 1 else "conversations"
    flash.success(request, f"{DONE[action]} {count} {plural}.")
    return redirect(back)


def _destination(request: HttpRequest) -> Folder | None:
    """The folder a move goes to: empty for none; another person's or an unknown one is refused."""
    try:
        return optional_folder(request.user, request.POST.get("folder", ""))
    except FolderNotFound:
        raise ChatInputError("unknown_folder", "No such folder.") from None


def _own_folder(request: HttpRequest, folder_id: str) -> Folder:
    try:
        return folder_for_user(request.user, folder_id)
    except FolderNotFound:
        raise Http404("No such folder.") from None


def _back(request: HttpRequest) -> str:
    """Where the form came from, if it is a page of this site; the list otherwise."""
    target = request.POST.get("next", "")
    if target.startswith("/") and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return reverse("chat:index")
