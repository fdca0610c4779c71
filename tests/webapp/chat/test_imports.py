"""Import: the round trip gives the same conversations back; a hostile file imports nothing and says why."""

from __future__ import annotations

import copy
import io
import json
import stat
import zipfile
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.webapp.chat.export_support import CONVERSATION_ID, build_conversation
from webapp.chat.imports import INTERRUPTED_ERROR
from webapp.chat.models import Conversation, Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return get_user_model().objects.create_user(username="alice")


@pytest.fixture
def bob():
    return get_user_model().objects.create_user(username="bob")


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def upload(client: Client, content: bytes, name: str = "export.json"):
    return client.post("/c/import/", {"file": SimpleUploadedFile(name, content)})


def without_ids(document: dict) -> dict:
    """The fields an import changes, blanked: the conversation's id; each message's, and the
    ids that name messages (parents, the path's leaf), as the position of the message named."""
    document = copy.deepcopy(document)
    document["id"] = None
    number = {message["id"]: n for n, message in enumerate(document["messages"])}
    document["current_leaf_id"] = number.get(document.get("current_leaf_id"))
    for message in document["messages"]:
        message["id"] = None
        message["parent_id"] = number.get(message.get("parent_id"))
    return document


def make_zip(*entries: tuple[str | zipfile.ZipInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries:
            archive.writestr(name, content)
    return buffer.getvalue()


def minimal(**fields) -> dict:
    return {
        "format": "mistral-chat/conversation",
        "version": 1,
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        **fields,
    }


def dumps(document: object) -> bytes:
    return json.dumps(document).encode()


# --- the round trip -------------------------------------------------------------------------


def test_export_import_export_differs_only_in_ids(alice, bob) -> None:
    build_conversation(alice)
    exported = logged_in(alice).get(f"/c/{CONVERSATION_ID}/export/json/").content
    response = upload(logged_in(bob), exported)
    assert response.status_code == 200 and b"Imported 1 conversation" in response.content
    imported = Conversation.objects.get(owner=bob)
    assert imported.id != CONVERSATION_ID
    again = json.loads(logged_in(bob).get(f"/c/{imported.id}/export/json/").content)
    assert without_ids(again) == without_ids(json.loads(exported))
    original_ids = set(Message.objects.filter(conversation_id=CONVERSATION_ID).values_list("id", flat=True))
    assert not original_ids & {m.id for m in imported.messages.all()}
    assert Conversation.objects.filter(owner=alice).count() == 1  # the original is untouched


def test_the_export_all_zip_in_json_imports_whole(alice, bob) -> None:
    build_conversation(alice)
    second = Conversation.objects.create(owner=alice, title="second")
    Message.objects.create(conversation=second, role="user", content="one more")
    archive = b"".join(logged_in(alice).get("/c/export/?format=json").streaming_content)

    response = upload(logged_in(bob), archive, "all.zip")
    assert response.status_code == 200 and b"Imported 2 conversations" in response.content
    again = zipfile.ZipFile(
        io.BytesIO(b"".join(logged_in(bob).get("/c/export/?format=json").streaming_content))
    )
    before = zipfile.ZipFile(io.BytesIO(archive))

    def documents(zipped: zipfile.ZipFile) -> list[dict]:
        index = json.loads(zipped.read("index.json"))
        return [without_ids(json.loads(zipped.read(entry["file"]))) for entry in index["conversations"]]

    assert documents(again) == documents(before)


def test_imported_messages_of_equal_time_keep_their_order(bob) -> None:
    moment = "2024-05-01T10:00:00.000000+00:00"
    turns = [
        {"role": "user" if n % 2 == 0 else "assistant", "content": str(n), "created_at": moment}
        for n in range(12)
    ]
    assert upload(logged_in(bob), dumps(minimal(messages=turns))).status_code == 200
    conversation = Conversation.objects.get(owner=bob)
    assert [
        m["content"]
        for m in json.loads(logged_in(bob).get(f"/c/{conversation.id}/export/json/").content)["messages"]
    ] == [str(n) for n in range(12)]


def test_a_hand_written_minimal_file_imports_with_defaults(bob) -> None:
    assert upload(logged_in(bob), dumps(minimal())).status_code == 200
    conversation = Conversation.objects.get(owner=bob)
    user, reply = conversation.messages.order_by("created_at")
    assert (user.content, reply.content, reply.status) == ("hi", "hello", "complete")
    assert user.created_at < reply.created_at and conversation.title == ""


def test_a_reply_exported_mid_stream_comes_back_failed_not_live(bob) -> None:
    document = minimal(
        messages=[
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "", "status": "streaming"},
        ]
    )
    assert upload(logged_in(bob), dumps(document)).status_code == 200
    reply = Message.objects.get(conversation__owner=bob, role="assistant")
    assert (reply.status, reply.error) == ("failed", INTERRUPTED_ERROR)


def test_imported_times_are_the_exported_ones(bob) -> None:
    document = minimal(created_at="2023-01-02T03:04:05.000006+00:00", updated_at="2023-01-03T00:00:00+01:00")
    upload(logged_in(bob), dumps(document))
    conversation = Conversation.objects.get(owner=bob)
    assert conversation.created_at == datetime(2023, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert conversation.updated_at == datetime(2023, 1, 2, 23, 0, tzinfo=UTC)


# --- hostile and broken files ------------------------------------------------------------------


def symlink_entry() -> zipfile.ZipInfo:
    entry = zipfile.ZipInfo("link.json")
    entry.external_attr = (stat.S_IFLNK | 0o777) << 16
    return entry


def with_encryption_flag(archive: bytes) -> bytes:
    """The zip with the "encrypted" bit set on its entry (zipfile cannot write one)."""
    patched = bytearray(archive)
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = patched.find(signature) + flag_offset
        patched[at] |= 0x1
    return bytes(patched)


def with_declared_size(archive: bytes, size: int) -> bytes:
    """The zip with its one entry claiming to unpack to `size` bytes, whatever it really holds."""
    patched = bytearray(archive)
    for signature, size_offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = patched.find(signature) + size_offset
        patched[at : at + 4] = size.to_bytes(4, "little")
    return bytes(patched)


GOOD = dumps(minimal(title="good"))
HOSTILE = {
    "not JSON": (b"hello, world", "is not JSON"),
    "truncated JSON": (GOOD[:-5], "is not JSON"),
    "not UTF-8": ('{"format": "é"}'.encode("latin-1"), "is not UTF-8"),
    "not an object": (b"[1, 2, 3]", "expected a JSON object"),
    "another format": (dumps({**minimal(), "format": "chatgpt"}), "is not a conversation export"),
    "a newer version": (dumps(minimal(version=3)), "version 3; this server reads versions 1 and 2"),
    "a version that is not a number": (dumps(minimal(version="1")), 'version "1"'),
    "messages not a list": (dumps(minimal(messages={"0": "hi"})), '"messages" must be a list'),
    "content not a string": (
        dumps(minimal(messages=[{"role": "user", "content": 5}])),
        "content must be a string",
    ),
    "a system role": (
        dumps(minimal(messages=[{"role": "system", "content": "x"}])),
        'role must be "user" or "assistant"',
    ),
    "an unknown status": (
        dumps(minimal(messages=[{"role": "user", "content": "x", "status": "great"}])),
        "status must be",
    ),
    "params not an object": (
        dumps(minimal(messages=[{"role": "user", "content": "x", "params": []}])),
        "params must be a JSON object",
    ),
    "negative tokens": (
        dumps(minimal(messages=[{"role": "assistant", "content": "x", "stats": {"completion_tokens": -1}}])),
        "completion_tokens must be a whole number",
    ),
    "an unknown field": (dumps(minimal(owner="root")), "fields this version does not know: owner"),
    "settings out of range": (dumps(minimal(settings={"temperature": 9})), "temperature must be in [0, 2]"),
    "settings of the wrong type": (
        dumps(minimal(settings={"guardrail": "yes"})),
        "guardrail must be true or false",
    ),
    "an unknown setting": (dumps(minimal(settings={"top_k": 5})), '"settings" must be an object with only'),
    "a naive time": (dumps(minimal(created_at="2024-01-01T00:00:00")), "ISO 8601 time with a time zone"),
    "times out of order": (
        dumps(
            minimal(
                messages=[
                    {"role": "user", "content": "a", "created_at": "2024-01-02T00:00:00Z"},
                    {"role": "assistant", "content": "b", "created_at": "2024-01-01T00:00:00Z"},
                ]
            )
        ),
        "earlier than the message before it",
    ),
    "NaN": (b'{"format": "mistral-chat/conversation", "version": NaN}', "NaN is not a number"),
    "deep nesting": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "a NUL character": (dumps(minimal(title="a\x00b")), "NUL character"),
    "a lone surrogate": (
        b'{"format": "mistral-chat/conversation", "version": 1, "title": "\\ud800", "messages": []}',
        "invalid character escape",
    ),
    "a message over the limit": (
        dumps(minimal(messages=[{"role": "user", "content": "x" * 20_001}])),
        "the limit is 20000",
    ),
    "a title over the limit": (dumps(minimal(title="t" * 201)), "title is 201 characters"),
    "a zip bomb": (make_zip(("bomb.json", b" " * 30_000_000)), "would unpack to 30.0 MB"),
    "a zip bomb that lies about its size": (
        with_declared_size(make_zip(("bomb.json", b" " * 30_000_000)), 100),
        "bomb.json cannot be read from the zip",
    ),
    "too many entries": (
        make_zip(*[(f"{n}.json", GOOD) for n in range(10_001)]),
        "10001 entries; the limit is 10000",
    ),
    "a path-traversal name": (make_zip(("ok.json", GOOD), ("../../etc/evil.json", GOOD)), "unsafe file name"),
    "an absolute name": (make_zip(("/etc/evil.json", GOOD)), "unsafe file name"),
    "a Windows path": (make_zip(("C:\\evil.json", GOOD)), "unsafe file name"),
    "a nested zip": (make_zip(("inner.zip", make_zip(("a.json", GOOD)))), "nested archives are not imported"),
    "a zip named .json": (
        make_zip(("inner.json", make_zip(("a.json", GOOD)))),
        "nested zips are not imported",
    ),
    "a file that is not JSON": (
        make_zip(("a.json", GOOD), ("notes.txt", b"hi")),
        "notes.txt is not a .json file",
    ),
    "a symbolic link": (make_zip((symlink_entry(), b"/etc/passwd")), "is a symbolic link"),
    "an encrypted entry": (with_encryption_flag(make_zip(("secret.json", GOOD))), "is encrypted"),
    "one bad file among good ones": (
        make_zip(("a.json", GOOD), ("b.json", b"{nope"), ("c.json", GOOD)),
        "b.json is not JSON",
    ),
    "an empty zip": (make_zip(), "holds no conversations"),
    "a broken zip": (make_zip(("a.json", GOOD))[:40], "not a readable zip"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_file_imports_nothing_and_says_why(bob, case: str) -> None:
    content, reason = HOSTILE[case]
    response = upload(logged_in(bob), content, "upload.zip" if content.startswith(b"PK") else "upload.json")
    assert response.status_code == 400
    page = response.content.decode()
    assert "Nothing was imported." in page
    assert reason in page.replace("&quot;", '"').replace("&#x27;", "'"), page[page.find("import-error") :][
        :400
    ]
    assert not Conversation.objects.filter(owner=bob).exists()
    assert not Message.objects.exists()


def test_limits_are_settings(bob, settings) -> None:
    settings.IMPORT_MAX_MESSAGES = 1
    assert "2 messages; the limit is 1" in upload(logged_in(bob), dumps(minimal())).content.decode()
    settings.IMPORT_MAX_UNCOMPRESSED_BYTES = len(GOOD) * 2
    archive = make_zip(*[(f"{n}.json", GOOD) for n in range(3)])
    assert "would unpack to" in upload(logged_in(bob), archive).content.decode()
    settings.IMPORT_MAX_BYTES = 10
    assert "The file is 0.0 MB; the limit is 0.0 MB" in upload(logged_in(bob), GOOD).content.decode()
    assert not Conversation.objects.exists()


def test_an_upload_without_a_file_asks_for_one(bob) -> None:
    response = logged_in(bob).post("/c/import/", {})
    assert response.status_code == 400 and b"Choose a file to import." in response.content


def test_the_import_form_needs_the_csrf_token(bob) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    page = client.get("/c/import/")
    assert page.status_code == 200 and b'enctype="multipart/form-data"' in page.content
    assert client.post("/c/import/", {"file": SimpleUploadedFile("a.json", GOOD)}).status_code == 403
    assert not Conversation.objects.exists()
