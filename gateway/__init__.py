"""The public HTTP API: forwards writes to ingest, assembles views from graph and similarity."""
