"""feedwise.engines."""
