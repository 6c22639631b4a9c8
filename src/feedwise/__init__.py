"""feedwise."""
