"""feedwise.server."""
