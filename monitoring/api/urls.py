from django.urls import path

from monitoring.api.views import HealthView, StatusView

app_name = "monitoring-api"

urlpatterns = [
    path("status/", StatusView.as_view(), name="status"),
    path("health/", HealthView.as_view(), name="health"),
]
