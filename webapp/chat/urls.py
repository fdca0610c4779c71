from django.urls import path

from webapp.chat import views

app_name = "chat"
urlpatterns = [
    path("", views.conversation_list, name="index"),
    path("new/", views.conversation_new, name="new"),
    path("<str:conversation_id>/", views.conversation_page, name="conversation"),
]
