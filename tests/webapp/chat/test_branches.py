"""The tree through the services and the socket: versions, the path shown, switching, the prompt."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from inference.chat_template import encode_chat
from inference.params import SamplingParams
from tests.webapp.chat.test_consumers import enqueued, make_conversation, make_user, open_socket, receive
from webapp.chat import branches, services, tree
from webapp.chat.models import Conversation, Message
from webapp.chat.selectors import messages_of, prompt_history
from webapp.chat.services import ChatInputError
from webapp.moderation.models import HiddenReply

__all__ = ["enqueued"]  # the fixture, imported for these tests


def finish(reply: Message, content: str) -> Message:
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE, content=content)
    reply.refresh_from_db()
    return reply


def send(conversation: Conversation, content: str, answer: str) -> tuple[Message, Message]:
    reply = services.reply_send(conversation=conversation, content=content, params=SamplingParams())
    return reply.parent, finish(reply, answer)


def shown(conversation: Conversation) -> list[str]:
    conversation.refresh_from_db()
    return [message.content for message in messages_of(conversation)]


@pytest.fixture
def chat(db, enqueued) -> Conversation:
    owner = get_user_model().objects.create_user(username="tree", password="x" * 12)
    return Conversation.objects.create(owner=owner)


# --- services --------------------------------------------------------------------------


def test_sends_form_one_path_each_message_under_the_one_before(chat: Conversation) -> None:
    q1, a1 = send(chat, "q1", "a1")
    q2, a2 = send(chat, "q2", "a2")
    assert (q1.parent_id, a1.parent_id, q2.parent_id, a2.parent_id) == (None, q1.id, a1.id, q2.id)
    assert shown(chat) == ["q1", "a1", "q2", "a2"]
    assert chat.current_leaf_id == a2.id


def test_regenerate_adds_versions_and_deletes_nothing(chat: Conversation) -> None:
    q1, a1 = send(chat, "q1", "a1")
    a1b = finish(branches.reply_regenerate(conversation=chat), "a1b")
    a1c = finish(branches.reply_regenerate(conversation=chat), "a1c")
    assert Message.objects.filter(conversation=chat).count() == 4
    assert {a1.parent_id, a1b.parent_id, a1c.parent_id} == {q1.id}
    assert shown(chat) == ["q1", "a1c"]
    path = messages_of(chat)
    assert path[1].position == tree.Position(q1.id, (a1.id, a1b.id, a1c.id), 2)
    assert path[0].position.count == 1


def test_regenerate_of_an_earlier_reply_adds_its_sibling_and_ends_the_path_there(chat: Conversation) -> None:
    q1, a1 = send(chat, "q1", "a1")
    send(chat, "q2", "a2")
    again = finish(branches.reply_regenerate(conversation=chat, message_id=str(a1.id)), "a1 again")
    assert again.parent_id == q1.id
    assert shown(chat) == ["q1", "a1 again"]
    assert Message.objects.filter(conversation=chat).count() == 5


def test_edit_adds_a_sibling_question_answered_again_and_keeps_the_old_turns(chat: Conversation) -> None:
    q1, _ = send(chat, "q1", "a1")
    q2, a2 = send(chat, "q2", "a2")
    reply = finish(branches.reply_edit(conversation=chat, message_id=str(q2.id), content="q2 edited"), "a3")
    edited = reply.parent
    assert edited.parent_id == q2.parent_id and edited.id != q2.id
    assert shown(chat) == ["q1", "a1", "q2 edited", "a3"]
    q2.refresh_from_db()
    assert q2.content == "q2" and Message.objects.filter(id=a2.id).exists()
    assert messages_of(chat)[2].position == tree.Position(q2.parent_id, (q2.id, edited.id), 1)


def test_editing_the_first_message_makes_a_second_root(chat: Conversation) -> None:
    q1, _ = send(chat, "q1", "a1")
    finish(branches.reply_edit(conversation=chat, message_id=str(q1.id), content="q1 edited"), "b1")
    assert shown(chat) == ["q1 edited", "b1"]
    assert messages_of(chat)[0].position.parent_id is None
    assert messages_of(chat)[0].position.count == 2


def test_switch_shows_a_version_down_to_its_newest_message_and_is_remembered(chat: Conversation) -> None:
    q1, a1 = send(chat, "q1", "a1")
    send(chat, "q2", "a2")
    finish(branches.reply_regenerate(conversation=chat, message_id=str(a1.id)), "a1b")
    assert shown(chat) == ["q1", "a1b"]
    path = branches.conversation_switch(conversation=chat, message_id=str(a1.id))
    assert [message.content for message in path] == ["q1", "a1", "q2", "a2"]
    # Remembered: a fresh read of the conversation (a reload) shows the same path.
    assert shown(Conversation.objects.get(pk=chat.pk)) == ["q1", "a1", "q2", "a2"]
    assert path[1].position.index == 0 and path[1].position.count == 2


def test_a_send_continues_the_path_shown_and_its_prompt_is_that_path(chat: Conversation) -> None:
    q1, a1 = send(chat, "q1", "a1")
    send(chat, "q2 on the first branch", "a2")
    finish(branches.reply_regenerate(conversation=chat, message_id=str(a1.id)), "a1b")
    reply = services.reply_send(conversation=chat, content="q3", params=SamplingParams())
    turns = prompt_history(reply)
    assert turns == [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1b"},
        {"role": "user", "content": "q3"},
    ]
    # Back on the first branch, the prompt is that branch; the shared first turn encodes the same.
    finish(reply, "a3")
    branches.conversation_switch(conversation=chat, message_id=str(a1.id))
    other = services.reply_send(conversation=chat, content="q4", params=SamplingParams())
    other_turns = prompt_history(other)
    assert [turn["content"] for turn in other_turns] == ["q1", "a1", "q2 on the first branch", "a2", "q4"]
    shared = encode_chat(turns[:1])  # the first question: the same ids at the start of both prompts
    assert encode_chat(turns)[: len(shared)] == shared == encode_chat(other_turns)[: len(shared)]


def test_versions_of_a_reply_share_the_prompt_token_for_token(chat: Conversation) -> None:
    send(chat, "q1", "a1")
    send(chat, "q2", "a2")
    first = prompt_history(chat.messages.get(content="a2"))
    again = branches.reply_regenerate(conversation=chat)
    assert encode_chat(prompt_history(again)) == encode_chat(first)


def bad_switch(chat: Conversation, message_id: object) -> str:
    before = Conversation.objects.get(pk=chat.pk).current_leaf_id
    with pytest.raises(ChatInputError) as refused:
        branches.conversation_switch(conversation=chat, message_id=message_id)
    assert Conversation.objects.get(pk=chat.pk).current_leaf_id == before
    return refused.value.code


def test_bad_switches_are_refused_and_change_nothing(chat: Conversation) -> None:
    q1, a1 = send(chat, "q1", "a1")
    finish(branches.reply_regenerate(conversation=chat), "a1b")
    stranger = get_user_model().objects.create_user(username="stranger", password="x" * 12)
    theirs = Conversation.objects.create(owner=stranger)
    their_question, _ = send(theirs, "theirs", "reply")
    mine_elsewhere = Conversation.objects.create(owner=chat.owner)
    my_other_question, _ = send(mine_elsewhere, "elsewhere", "reply")
    assert bad_switch(chat, str(their_question.id)) == "unknown_message"
    assert bad_switch(chat, str(my_other_question.id)) == "unknown_message"
    assert bad_switch(chat, "not-a-uuid") == "unknown_message"
    assert bad_switch(chat, 12) == "invalid_message_id"
    assert bad_switch(chat, None) == "invalid_message_id"
    HiddenReply.objects.create(message=a1, hidden_by=stranger)
    assert bad_switch(chat, str(a1.id)) == "unknown_message"
    services.reply_send(conversation=chat, content="q2", params=SamplingParams())
    assert bad_switch(chat, str(q1.id)) == "reply_in_progress"


def test_a_hidden_reply_is_no_version_and_its_question_can_be_answered_again(chat: Conversation) -> None:
    q1, a1 = send(chat, "q1", "a1")
    moderator = get_user_model().objects.create_user(username="mod", password="x" * 12, is_staff=True)
    HiddenReply.objects.create(message=a1, hidden_by=moderator)
    assert shown(chat) == ["q1"]
    reply = finish(branches.reply_regenerate(conversation=chat), "a1b")
    assert reply.parent_id == q1.id
    assert messages_of(chat)[1].position.count == 1


# --- the socket ------------------------------------------------------------------------


@database_sync_to_async
def two_versions(conversation: Conversation) -> tuple[Message, Message, Message]:
    q1, a1 = send(conversation, "q1", "a1")
    a1b = finish(branches.reply_regenerate(conversation=conversation), "a1b")
    return q1, a1, a1b


@pytest.mark.django_db(transaction=True)
async def test_switch_moves_every_tab_and_sync_tells_only_the_one_asking(enqueued: list[str]) -> None:
    user = await make_user()
    conversation = await make_conversation(user)
    q1, a1, a1b = await two_versions(conversation)
    tab, other_tab = await open_socket(conversation, user), await open_socket(conversation, user)

    await tab.send_to(text_data=json.dumps({"type": "switch", "message_id": str(a1.id)}))
    for comm in (tab, other_tab):
        event = await receive(comm)
        assert event["type"] == "path" and event["leaf_id"] == str(a1.id)
        assert [m["content"] for m in event["messages"]] == ["q1", "a1"]
        reply = event["messages"][1]
        assert reply["parent_id"] == str(q1.id)
        assert reply["sibling_ids"] == [str(a1.id), str(a1b.id)]
        assert (reply["sibling_index"], reply["sibling_count"]) == (0, 2)
        assert reply["status"] == "complete" and "stats" in reply and reply["error"] == ""

    await other_tab.send_to(text_data=json.dumps({"type": "sync"}))
    synced = await receive(other_tab)
    assert synced["type"] == "path" and synced["leaf_id"] == str(a1.id)
    assert await tab.receive_nothing(timeout=0.3)
    await tab.disconnect()
    await other_tab.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_bad_switch_gets_an_error_and_no_tab_hears_of_it(enqueued: list[str]) -> None:
    user, stranger = await make_user(), await make_user("stranger")
    conversation = await make_conversation(user)
    theirs = await make_conversation(stranger)
    await two_versions(conversation)
    their_question, _ = await database_sync_to_async(send)(theirs, "theirs", "reply")
    tab, other_tab = await open_socket(conversation, user), await open_socket(conversation, user)
    frames = [
        ({"message_id": str(their_question.id)}, "unknown_message"),
        ({"message_id": "../../etc"}, "unknown_message"),
        ({"message_id": ["a"]}, "invalid_message_id"),
        ({}, "invalid_message_id"),
    ]
    for frame, code in frames:
        await tab.send_to(text_data=json.dumps({"type": "switch", **frame}))
        event = await receive(tab)
        assert event["type"] == "error" and event["code"] == code and event["message"]
    assert await other_tab.receive_nothing(timeout=0.3)
    leaf = await database_sync_to_async(
        lambda: Conversation.objects.get(pk=conversation.pk).current_leaf.content
    )()
    assert leaf == "a1b"
    await tab.disconnect()
    await other_tab.disconnect()


def test_a_bad_regenerate_target_is_refused_and_changes_nothing(chat: Conversation) -> None:
    q1, a1 = send(chat, "q1", "a1")
    before = set(Message.objects.values_list("id", flat=True))
    for message_id, code in [
        (str(q1.id), "nothing_to_regenerate"),  # a question is no reply
        ("not-a-uuid", "unknown_message"),
        (7, "invalid_message_id"),
    ]:
        with pytest.raises(ChatInputError) as refused:
            branches.reply_regenerate(conversation=chat, message_id=message_id)
        assert refused.value.code == code
    assert set(Message.objects.values_list("id", flat=True)) == before
    assert Conversation.objects.get(pk=chat.pk).current_leaf_id == a1.id


def test_the_admin_names_the_leaf_and_parent_by_id_never_a_select_of_every_message(
    chat: Conversation,
) -> None:
    from django.test import Client

    q1, a1 = send(chat, "q1", "a1")
    admin = get_user_model().objects.create_superuser(username="root", password="x" * 12)
    client = Client()
    client.force_login(admin)
    for url, field in [
        (f"/admin/chat/conversation/{chat.pk}/change/", "current_leaf"),
        (f"/admin/chat/message/{a1.pk}/change/", "parent"),
    ]:
        page = client.get(url).content.decode()
        assert f'name="{field}"' in page and f'<select name="{field}"' not in page
