"""The dashboard's pages (its live feed, /ws/status/, is routed in mcphub/asgi.py)."""

from django.urls import path

from monitoring import views

app_name = "dashboard"

urlpatterns = [
    path("", views.index, name="index"),
    path("servers/<slug:slug>/", views.server_detail, name="server"),
]
