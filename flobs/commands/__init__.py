"""One module per CLI command; each registers itself on `flobs.cli.app`."""
