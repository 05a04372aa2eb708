"""Platograph's back-end services: ingest, graph, similarity."""
