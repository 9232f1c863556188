"""Fixtures for the live clients' tests."""

from tests.e2e.fake_prometheus import answering_server  # noqa: F401 - a fixture
