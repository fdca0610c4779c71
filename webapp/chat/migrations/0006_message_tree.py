"""Messages form a tree: each has a parent, and a conversation remembers the path shown.

Existing conversations were linear lists: each message's parent becomes the
one before it (by time, then id, the order the page showed), and the path
shown is the whole list, ending at its last message.
"""

import django.db.models.deletion
from django.db import migrations, models

# Conversations handled per query while filling the new columns.
CHUNK = 500


def link_linear_lists(apps, schema_editor):
    Conversation = apps.get_model("chat", "Conversation")
    Message = apps.get_model("chat", "Message")
    conversation_ids = list(Conversation.objects.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(conversation_ids), CHUNK):
        chunk = conversation_ids[start : start + CHUNK]
        rows = Message.objects.filter(conversation_id__in=chunk).order_by(
            "conversation_id", "created_at", "id"
        )
        previous: dict[object, object] = {}
        changed = []
        for message in rows.only("id", "conversation_id"):
            message.parent_id = previous.get(message.conversation_id)
            previous[message.conversation_id] = message.id
            if message.parent_id is not None:
                changed.append(message)
        Message.objects.bulk_update(changed, ["parent"], batch_size=500)
        leaves = [Conversation(pk=pk, current_leaf_id=leaf) for pk, leaf in previous.items()]
        Conversation.objects.bulk_update(leaves, ["current_leaf"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0005_message_usage_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="children",
                to="chat.message",
            ),
        ),
        migrations.AddField(
            model_name="conversation",
            name="current_leaf",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="chat.message",
            ),
        ),
        # Reversed, the columns go and the messages stay, in time order as before.
        migrations.RunPython(link_linear_lists, migrations.RunPython.noop, elidable=False),
    ]
