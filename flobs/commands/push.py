"""`flobs push` (placeholder until its issue lands)."""
