"""Docker Registry HTTP API v2: domain model, authentication, transport and client."""
