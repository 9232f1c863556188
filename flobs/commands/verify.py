"""`flobs verify` (placeholder until its issue lands)."""
