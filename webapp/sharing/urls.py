from django.urls import path

from webapp.sharing import views

app_name = "sharing"
urlpatterns = [
    path("shares/", views.my_links, name="mine"),
    path("shares/<int:link_id>/revoke/", views.link_revoke, name="revoke"),
    path("c/<str:conversation_id>/share/", views.share_create, name="create"),
    path("s/<str:token>/", views.shared_page, name="page"),
    path("s/<str:token>/continue/", views.shared_continue, name="continue"),
]
