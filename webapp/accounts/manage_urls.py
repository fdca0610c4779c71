from django.urls import path

from webapp.accounts import manage_views as views

app_name = "manage"
urlpatterns = [
    path("users/", views.people, name="people"),
    path("users/<int:user_id>/", views.person, name="person"),
    path("users/<int:user_id>/role/", views.person_role, name="person_role"),
    path("users/<int:user_id>/groups/", views.person_groups, name="person_groups"),
    path("users/<int:user_id>/deactivate/", views.person_deactivate, name="person_deactivate"),
    path("users/<int:user_id>/reactivate/", views.person_reactivate, name="person_reactivate"),
    path("users/<int:user_id>/approve/", views.person_approve, name="person_approve"),
    path("users/<int:user_id>/decline/", views.person_decline, name="person_decline"),
    path("groups/", views.groups, name="groups"),
    path("groups/<int:group_id>/", views.group_update, name="group_update"),
    path("invitations/", views.invitations, name="invitations"),
]
