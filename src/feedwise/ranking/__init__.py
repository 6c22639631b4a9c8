"""feedwise.ranking."""
