from django.urls import path

from webapp.moderation import views
from webapp.sharing import staff_views as share_views

app_name = "moderation"
urlpatterns = [
    path("", views.queue, name="queue"),
    path("act/", views.act, name="act"),
    path("rules/", views.rule_create, name="rule_create"),
    path("policies/", views.policies, name="policies"),
    path("stats/", views.stats_page, name="stats"),
    path("feedback/", views.feedback_page, name="feedback"),
    path("shares/", share_views.live_links, name="shares"),
    path("shares/<int:link_id>/take-down/", share_views.take_down, name="take_down_share"),
]
