"""Customer care: a knowledge base of answers, intent recognition, answer retrieval,
routing (auto-reply or a human queue) and care analytics; see docs/care.md."""
