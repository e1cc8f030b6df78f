from rest_framework.routers import SimpleRouter

from servers.api import schema  # noqa: F401  (registers the bearer scheme with drf-spectacular)
from servers.api.views import McpServerViewSet, ToolViewSet

router = SimpleRouter()
router.register("servers", McpServerViewSet, basename="server")
router.register("tools", ToolViewSet, basename="tool")

urlpatterns = router.urls
