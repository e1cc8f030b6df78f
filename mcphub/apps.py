from django.apps import AppConfig


class McpHubConfig(AppConfig):
    name = "mcphub"
    verbose_name = "MCP Hub"
