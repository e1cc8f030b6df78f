"""The registry in the Django admin: servers with their discovered tools, resources and prompts; tokens.

Admin methods stay thin: every write goes through ``servers.services`` (and the
upload through ``servers.mcp_json``), so the admin has the same side effects as
the management commands and the API.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Prefetch, QuerySet
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from servers import mcp_json, services
from servers.discovery import probe
from servers.forms import ImportForm, McpServerForm
from servers.models import AccessToken, McpServer, Prompt, Resource, ScalingEvent, Status, Tool
from servers.upstream import stderr

STATUS_COLOURS = {
    Status.UP: "#2e7d32",
    Status.DEGRADED: "#ef6c00",
    Status.DOWN: "#c62828",
    Status.UNKNOWN: "#757575",
}
TOKEN_STATE_COLOURS = {"active": "#2e7d32", "expired": "#757575", "revoked": "#c62828"}
MAX_IMPORT_BYTES = 5 * 1024 * 1024
RECENT_SCALING_EVENTS = 20


class TagFilter(admin.SimpleListFilter):
    """Filter by one tag (servers keep their tags as a JSON list)."""

    title = "tag"
    parameter_name = "tag"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        tags: set[str] = set()
        for server_tags in McpServer.objects.values_list("tags", flat=True):
            tags.update(tag for tag in server_tags or [] if isinstance(tag, str))
        return [(tag, tag) for tag in sorted(tags)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[McpServer]) -> QuerySet[McpServer]:
        value = self.value()
        return queryset.filter(tags__contains=[value]) if value else queryset


class ToolInline(admin.TabularInline):
    """Discovered tools: only the enable toggle is editable (the rest comes from the server)."""

    model = Tool
    fields = ("name", "title", "short_description", "enabled", "last_seen")
    readonly_fields = ("name", "title", "short_description", "last_seen")
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="description")
    def short_description(self, tool: Tool) -> str:
        return Truncator(tool.description).chars(120)


class ReadOnlyInline(admin.TabularInline):
    """Discovered resources and prompts, shown as found."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ResourceInline(ReadOnlyInline):
    model = Resource
    fields = ("uri", "name", "title", "mime_type", "last_seen")


class PromptInline(ReadOnlyInline):
    model = Prompt
    fields = ("name", "title", "description", "arguments", "last_seen")


class RecentScalingFormSet(BaseInlineFormSet):
    """Only the newest events of the server (the whole history is in the Scaling events list)."""

    def get_queryset(self) -> QuerySet[ScalingEvent]:
        return super().get_queryset()[:RECENT_SCALING_EVENTS]


class ScalingEventInline(ReadOnlyInline):
    model = ScalingEvent
    formset = RecentScalingFormSet
    fields = ("at", "from_instances", "to_instances", "reason")
    readonly_fields = fields
    verbose_name_plural = f"scaling events (newest {RECENT_SCALING_EVENTS}, all web processes)"


@admin.register(ScalingEvent)
class ScalingEventAdmin(admin.ModelAdmin):
    """Autoscaling decisions, as recorded by the pools; read-only."""

    list_display = ("at", "server", "from_instances", "to_instances", "reason")
    list_filter = ("server",)
    list_select_related = ("server",)
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(McpServer)
class McpServerAdmin(admin.ModelAdmin):
    form = McpServerForm
    list_display = ("name", "slug", "status_badge", "transport", "tool_count", "last_checked_at", "enabled")
    list_display_links = ("name", "slug")
    list_filter = ("transport", "status", "enabled", TagFilter)
    search_fields = ("name", "slug", "description", "command", "url")
    prepopulated_fields = {"slug": ("name",)}
    inlines = (ToolInline, ResourceInline, PromptInline, ScalingEventInline)
    actions = ("check_now", "refresh_tools", "enable_servers", "disable_servers", "restart_servers")
    readonly_fields = (
        "status_badge",
        "status_changed_at",
        "last_checked_at",
        "era",
        "protocol_version",
        "last_discovered_at",
        "discovery_error",
        "config_version",
        "created_at",
        "updated_at",
        "stderr_panel",
    )
    fieldsets = (
        (None, {"fields": ("name", "slug", "description", "transport", "enabled", "tags")}),
        ("stdio", {"fields": ("command", "args", "env", "cwd", "idle_timeout")}),
        ("HTTP", {"fields": ("url", "headers")}),
        (
            "Instances",
            {
                "fields": (
                    ("min_instances", "max_instances"),
                    ("balancing_policy", "instance_max_concurrent_calls"),
                    "replica_urls",
                ),
                "description": "Several stdio processes of the same command (autoscaled between min and max), "
                "or several URLs of one HTTP server; calls are spread by the balancing policy.",
            },
        ),
        (
            "Limits and tools",
            {
                "fields": (
                    "connect_timeout",
                    "call_timeout",
                    "max_concurrent_calls",
                    "health_check_interval",
                    "tool_allowlist",
                    "tool_denylist",
                )
            },
        ),
        (
            "State",
            {
                "fields": (
                    ("status_badge", "status_changed_at", "last_checked_at"),
                    ("era", "protocol_version", "config_version"),
                    ("last_discovered_at", "discovery_error"),
                    ("created_at", "updated_at"),
                )
            },
        ),
        ("Recent stderr", {"fields": ("stderr_panel",)}),
    )

    # --- list -----------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[McpServer]:
        # One query for the counts, not one per row.
        return super().get_queryset(request).annotate(tool_count=Count("tools", distinct=True))

    @admin.display(description="status", ordering="status")
    def status_badge(self, server: McpServer) -> SafeString:
        colour = STATUS_COLOURS.get(Status(server.status), "#757575")
        return format_html('<strong style="color: {}">&#9679; {}</strong>', colour, server.get_status_display())

    @admin.display(description="tools", ordering="tool_count")
    def tool_count(self, server: McpServer) -> int:
        return getattr(server, "tool_count", 0)

    # --- change page ----------------------------------------------------------------------

    @admin.display(description="last lines on stderr")
    def stderr_panel(self, server: McpServer) -> str:
        if server.pk is None:
            return "-"
        try:
            lines = stderr.recent_lines(server.pk)
        except Exception as exc:  # Redis down: the page still opens
            return f"stderr unavailable: {exc}"
        if not lines:
            return "Nothing written to stderr yet."
        # format_html escapes the lines: a process cannot inject HTML into the admin.
        return format_html(
            '<pre style="max-height: 24em; overflow: auto; white-space: pre-wrap; margin: 0">{}</pre>',
            "\n".join(lines),
        )

    # --- writes, through services ---------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: McpServer, form: ModelForm, change: bool) -> None:
        previous = McpServer.objects.get(pk=obj.pk) if change else None
        services.save_server(obj, previous=previous)

    def save_formset(self, request: HttpRequest, form: ModelForm, formset: BaseInlineFormSet, change: bool) -> None:
        # commit=False fills changed_objects (for the history message) without writing.
        instances = formset.save(commit=False)
        if formset.model is Tool:
            services.set_tools_enabled({tool.pk: tool.enabled for tool in instances})

    def delete_model(self, request: HttpRequest, obj: McpServer) -> None:
        services.delete_server(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[McpServer]) -> None:
        for server in queryset:
            services.delete_server(server)

    # --- actions --------------------------------------------------------------------------

    @admin.action(description="Check now", permissions=["change"])
    def check_now(self, request: HttpRequest, queryset: QuerySet[McpServer]) -> None:
        for server in queryset:
            try:
                result = probe(server)
            except Exception as exc:  # a probe should not raise; if it does, report it on the page
                self.message_user(request, f"{server.slug}: check failed: {exc}", messages.ERROR)
                continue
            if result.ok:
                era = result.era or "era unknown"
                self.message_user(request, f"{server.slug}: up, {result.latency_ms:.0f} ms ({era})", messages.SUCCESS)
            else:
                self.message_user(request, f"{server.slug}: down: {result.error}", messages.ERROR)

    @admin.action(description="Refresh tools", permissions=["change"])
    def refresh_tools(self, request: HttpRequest, queryset: QuerySet[McpServer]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        services.schedule_discovery(ids)
        self.message_user(request, f"Discovery scheduled for {len(ids)} server(s).", messages.SUCCESS)

    @admin.action(description="Enable", permissions=["change"])
    def enable_servers(self, request: HttpRequest, queryset: QuerySet[McpServer]) -> None:
        changed = services.set_enabled(queryset.values_list("pk", flat=True), True)
        self.message_user(request, f"{changed} server(s) enabled.", messages.SUCCESS)

    @admin.action(description="Disable", permissions=["change"])
    def disable_servers(self, request: HttpRequest, queryset: QuerySet[McpServer]) -> None:
        changed = services.set_enabled(queryset.values_list("pk", flat=True), False)
        self.message_user(request, f"{changed} server(s) disabled.", messages.SUCCESS)

    @admin.action(description="Restart", permissions=["change"])
    def restart_servers(self, request: HttpRequest, queryset: QuerySet[McpServer]) -> None:
        count = services.request_restart(queryset.values_list("pk", flat=True))
        self.message_user(request, f"Restart requested for {count} server(s).", messages.SUCCESS)

    # --- import / export ------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        own = [
            path("import/", self.admin_site.admin_view(self.import_view), name="servers_mcpserver_import"),
            path("export/", self.admin_site.admin_view(self.export_view), name="servers_mcpserver_export"),
        ]
        return own + super().get_urls()  # before the catch-all <object_id>/ routes

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Upload an mcpServers JSON file; show what was created, updated and rejected (and why)."""
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        report = None
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > MAX_IMPORT_BYTES:
                form.add_error("file", f"The file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB.")
            else:
                try:
                    report = mcp_json.import_text(upload.read())
                except mcp_json.McpJsonError as exc:
                    form.add_error("file", f"Not an mcpServers file: {exc}")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import mcpServers JSON",
            "form": form,
            "report": report,
        }
        return TemplateResponse(request, "admin/servers/mcpserver/import.html", context)

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """Download every server as mcpServers JSON, secret values masked."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        document = mcp_json.export_servers(show_secrets=False, hub_fields=request.GET.get("hub_fields") == "1")
        response = HttpResponse(mcp_json.dumps(document), content_type="application/json")
        response["Content-Disposition"] = 'attachment; filename="mcp-servers.json"'
        return response


class TokenStateFilter(admin.SimpleListFilter):
    """Active, expired or revoked (a state derived from two dates)."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("active", "active"), ("expired", "expired"), ("revoked", "revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AccessToken]) -> QuerySet[AccessToken]:
        value = self.value()
        if value == "active":
            return queryset.active()
        if value == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=timezone.now())
        if value == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(AccessToken)
class AccessTokenAdmin(admin.ModelAdmin):
    """Tokens: created with the secret shown once (never stored), limited to servers, revoked (the row stays)."""

    list_display = ("name", "hint_display", "state_badge", "server_list", "expires_at", "last_used_at", "created_at")
    list_filter = (TokenStateFilter,)
    search_fields = ("name", "hint")
    filter_horizontal = ("servers",)
    actions = ("revoke",)
    editable_fields = ("name", "servers", "expires_at")
    state_fields = ("hint_display", "state_badge", "last_used_at", "revoked_at", "created_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[AccessToken]:
        servers = Prefetch("servers", queryset=McpServer.objects.order_by("slug").only("slug"))
        return super().get_queryset(request).prefetch_related(servers)

    def get_fields(self, request: HttpRequest, obj: AccessToken | None = None) -> tuple[str, ...]:
        return self.editable_fields if obj is None else self.editable_fields + self.state_fields

    def get_readonly_fields(self, request: HttpRequest, obj: AccessToken | None = None) -> tuple[str, ...]:
        return () if obj is None else self.state_fields

    def has_change_permission(self, request: HttpRequest, obj: AccessToken | None = None) -> bool:
        # A revoked token is history: viewable, not editable.
        return super().has_change_permission(request, obj) and (obj is None or obj.revoked_at is None)

    def has_delete_permission(self, request: HttpRequest, obj: AccessToken | None = None) -> bool:
        return False  # revoke instead: the row keeps the token's name for history

    @admin.display(description="hint", ordering="hint")
    def hint_display(self, token: AccessToken) -> str:
        return f"{token.hint}…" if token.hint else "-"

    @admin.display(description="state")
    def state_badge(self, token: AccessToken) -> SafeString:
        state = token.state
        return format_html('<strong style="color: {}">{}</strong>', TOKEN_STATE_COLOURS[state], state)

    @admin.display(description="servers")
    def server_list(self, token: AccessToken) -> str:
        return ", ".join(server.slug for server in token.servers.all()) or "all servers"

    # --- writes, through services ---------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: AccessToken, form: ModelForm, change: bool) -> None:
        servers = form.cleaned_data["servers"]
        if change:
            services.update_token(obj, servers)
        else:
            # Kept on this request only, for response_add: never in the database, a message or the session.
            request.new_token_secret = services.issue_token(obj, servers)  # type: ignore[attr-defined]

    def save_related(self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool) -> None:
        """Nothing left to save: the service set the servers with the token."""

    def response_add(
        self, request: HttpRequest, obj: AccessToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        """The one page that shows the secret, right after creation (no redirect: nothing carries it further)."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Token created",
            "token": obj,
            "secret": request.new_token_secret,  # type: ignore[attr-defined]
            "servers": self.server_list(obj),
        }
        # Not cached: admin views are never_cache (Cache-Control: no-store).
        return TemplateResponse(request, "admin/servers/accesstoken/created.html", context)

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[AccessToken]) -> None:
        count = services.revoke_tokens(queryset)
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)
