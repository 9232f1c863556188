"""`flobs simulate` (placeholder until its issue lands)."""
