"""The public request and response models of every service: what crosses HTTP between processes, so that
the gateway validates and documents the same bodies the services take, without importing a service."""
