"""Platograph: a research knowledge graph built from events."""
