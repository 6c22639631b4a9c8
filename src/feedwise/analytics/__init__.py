"""feedwise.analytics."""
