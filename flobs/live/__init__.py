"""Live checks and processes: `flobs verify` and `flobs demo`."""
