"""flobs: turn one Flintlock host inventory into a validated observability stack."""

__version__ = "0.1.0"
