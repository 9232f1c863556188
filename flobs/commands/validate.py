"""`flobs validate` (placeholder until its issue lands)."""
