from django.urls import path

from webapp.moderation import views

app_name = "moderation"
urlpatterns = [
    path("", views.queue, name="queue"),
    path("act/", views.act, name="act"),
    path("rules/", views.rule_create, name="rule_create"),
    path("policies/", views.policies, name="policies"),
    path("stats/", views.stats_page, name="stats"),
    path("feedback/", views.feedback_page, name="feedback"),
]
