"""feedwise.server.routes."""
