from django.apps import AppConfig

from servers.conf import servers_conf


class ServersConfig(AppConfig):
    name = "servers"

    def ready(self) -> None:
        servers_conf()  # a bad setting (e.g. MCPHUB_TOOL_SEPARATOR) stops the start, not the first call
