"""Similarity: embeds entities into a vector index and proposes candidate edges and duplicates."""
