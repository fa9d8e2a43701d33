"""Use cases that span repositories; each takes a connection inside the caller's transaction."""
