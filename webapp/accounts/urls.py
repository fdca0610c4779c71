from django.contrib.auth import views as auth_views
from django.urls import path

from webapp.accounts import views
from webapp.accounts.forms import LoginForm

urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path("invitation/<str:token>/", views.signup_invited, name="signup_invited"),
    path("login/", views.ThrottledLoginView.as_view(authentication_form=LoginForm), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("settings/", views.account_settings, name="account"),
]
