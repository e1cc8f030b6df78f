"""The aggregated MCP endpoint (/mcp) and the per-server endpoints (/mcp/<slug>/)."""
