"""Connections to upstream MCP servers: supervised stdio processes and pooled HTTP sessions."""
