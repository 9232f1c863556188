"""Jinja templates shipped with flobs (installed as flobs.templates)."""
