"""The access service: API keys (only their hashes), their scopes and owners."""
