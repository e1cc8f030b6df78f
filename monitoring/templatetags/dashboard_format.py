"""Number formats of the dashboard (``dashboard.js`` formats live updates the same way)."""

from __future__ import annotations

from django import template

register = template.Library()
DASH = "\u2013"  # an en dash: no figure


@register.filter
def ms(value: float | None) -> str:
    """Milliseconds: '12.3 ms', '1.24 s'; a dash when there is no figure."""
    if value is None:
        return DASH
    value = float(value)
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


@register.filter
def percent(value: float | None) -> str:
    """A ratio as a percentage: '0.0 %', '12.5 %'; a dash without calls."""
    if value is None:
        return DASH
    return f"{float(value) * 100:.1f} %"


@register.filter
def rate(value: float | None) -> str:
    """Calls per minute, short: '0', '3.2', '1.2k'."""
    if value is None:
        return DASH
    value = float(value)
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.1f}".removesuffix(".0")


TRANSPORTS = {"stdio": "stdio", "streamable_http": "HTTP", "sse": "SSE"}


@register.filter
def transport(value: str) -> str:
    return TRANSPORTS.get(value, value)


@register.filter
def clock(value: str | None) -> str:
    """'HH:MM:SS' of an ISO 8601 UTC timestamp."""
    return value[11:19] if value else DASH
