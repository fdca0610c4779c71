from django.apps import AppConfig


class ModerationConfig(AppConfig):
    name = "webapp.moderation"
    label = "moderation"
    verbose_name = "Moderation"
