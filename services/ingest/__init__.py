"""Ingest: validates entities and edges against the ontology and appends events to the stream."""
