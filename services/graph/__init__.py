"""Graph: projects the event stream into Postgres (journal + read model) and serves graph reads."""
