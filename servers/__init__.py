"""The servers app."""
