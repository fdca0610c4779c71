from django.contrib.auth import views as auth_views
from django.urls import path

from webapp.accounts import sso_views, views
from webapp.accounts.forms import LoginForm

urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path("invitation/<str:token>/", views.signup_invited, name="signup_invited"),
    path("login/", views.ThrottledLoginView.as_view(authentication_form=LoginForm), name="login"),
    path("sso/<str:provider_id>/", sso_views.sso_begin, name="sso_begin"),
    path("sso/<str:provider_id>/callback/", sso_views.sso_callback, name="sso_callback"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("settings/", views.account_settings, name="account"),
]
