from django.urls import path

from webapp.usage import views

app_name = "usage"
urlpatterns = [
    path("", views.my_usage, name="mine"),
    path("csv/", views.my_usage_csv, name="mine_csv"),
    # Administrators: per person (people), per API key (keys), per group (groups); selectors.DIMENSIONS.
    path("<str:dimension>/", views.breakdown, name="breakdown"),
    path("<str:dimension>/csv/", views.breakdown_csv, name="breakdown_csv"),
    path("<str:dimension>/<int:ident>/", views.breakdown_detail, name="detail"),
    path("<str:dimension>/<int:ident>/csv/", views.breakdown_detail_csv, name="detail_csv"),
]
