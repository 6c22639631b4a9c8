"""feedwise.datasets."""
