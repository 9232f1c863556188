"""The simulated Flintlock host used by `flobs simulate`, `flobs demo` and the e2e tests."""
