"""Text signals: language, sentiment and the trainable text classifier."""
