"""feedwise.report."""
