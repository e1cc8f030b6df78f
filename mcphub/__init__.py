"""MCP Hub: registers, runs, watches and proxies MCP servers for a team."""

from mcphub.celery import app as celery_app

__all__ = ["celery_app"]
