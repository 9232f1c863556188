"""JSON Schemas shipped with flobs (installed as flobs.schemas)."""
