"""The logs app."""
