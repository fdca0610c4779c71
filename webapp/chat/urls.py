from django.urls import path

from webapp.chat import export_views, feedback_views, organise_views, views
from webapp.moderation import report_views

app_name = "chat"
urlpatterns = [
    path("", views.conversation_list, name="index"),
    path("new/", views.conversation_new, name="new"),
    path("search/", views.conversation_search, name="search"),
    # Organising (folders, bulk actions): before the catch-all conversation route below.
    path("bulk/", organise_views.conversations_bulk, name="bulk"),
    path("folders/new/", organise_views.folder_new, name="folder_new"),
    path("folders/<str:folder_id>/rename/", organise_views.folder_rename, name="folder_rename"),
    path("folders/<str:folder_id>/delete/", organise_views.folder_delete, name="folder_delete"),
    path("<str:conversation_id>/rename/", views.conversation_rename, name="rename"),
    path("<str:conversation_id>/delete/", views.conversation_delete, name="delete"),
    # Exports and import: before the catch-all conversation route below.
    path("export/", export_views.export_all, name="export"),
    path("export/started/", export_views.export_started, name="export_started"),
    path("import/", export_views.import_page, name="import"),
    path(
        "<str:conversation_id>/export/<str:export_format>/",
        export_views.conversation_export,
        name="export_conversation",
    ),
    path("<str:conversation_id>/m/<str:message_id>/report/", report_views.report_reply, name="report"),
    path(
        "<str:conversation_id>/m/<str:message_id>/feedback/", feedback_views.reply_feedback, name="feedback"
    ),
    path("<str:conversation_id>/", views.conversation_page, name="conversation"),
]
