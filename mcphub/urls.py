"""HTTP routes of the Django part of the hub (WebSocket and /mcp routes: mcphub/asgi.py)."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from mcphub import views
from monitoring import prometheus
from monitoring.api.metrics import MetricsView

handler404 = views.not_found

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/logs/", include("logs.api.urls")),
    path("api/metrics/", MetricsView.as_view(), name="api-metrics"),
    path("api/", include("servers.api.urls")),
    path("metrics", prometheus.metrics_view, name="metrics"),
    path("api/", include("monitoring.api.urls")),  # status, health (and metrics)
    path("", include("monitoring.urls")),  # the dashboard: / and /servers/<slug>/
]
