"""Similarity: embeds entities and proposes candidate links (placeholder until the similarity issue)."""
