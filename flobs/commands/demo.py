"""`flobs demo` (placeholder until its issue lands)."""
