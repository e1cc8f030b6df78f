"""Clients of the REST API tests: staff login, full and limited bearer tokens."""

from __future__ import annotations

import sys

from django.contrib.auth.models import User
from django.test import Client

from servers import services
from servers.models import McpServer


def make_server(slug: str, **fields: object) -> McpServer:
    """A stdio server row written directly (test setup: no discovery is scheduled)."""
    fields.setdefault("name", slug.title())
    fields.setdefault("command", sys.executable)
    return McpServer.objects.create(slug=slug, **fields)


def token_client(*server_slugs: str, name: str = "ci") -> Client:
    """A client sending a new token's secret as ``Authorization: Bearer``; limited to these servers if any."""
    _, secret = services.create_token(name, server_slugs)
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


def staff_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def plain_user_client(django_user_model: type[User]) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_user("plain", password="x"))
    return client
