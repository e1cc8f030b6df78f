"""The dashboard's pages: complete server-rendered HTML (the live updates are an enhancement)."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from monitoring import dashboard
from servers.models import McpServer


@staff_member_required
def index(request: HttpRequest) -> HttpResponse:
    """`/`: a card per server, totals, the status timeline and the newest calls."""
    cards = dashboard.server_cards()
    context = {
        "cards": cards,
        "totals": dashboard.totals(cards),
        "calls": dashboard.recent_calls(),
        "timeline": dashboard.timeline(),
    }
    return render(request, "monitoring/dashboard.html", context)


@staff_member_required
def server_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """`/servers/<slug>/`: charts over 1 h / 24 h / 7 d, tools, stderr and status history of one server."""
    server = get_object_or_404(McpServer, slug=slug)
    return render(request, "monitoring/server.html", dashboard.server_page(server))
