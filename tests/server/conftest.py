"""Fixtures of the service tests: a small world (store + promoted model + keys) and servers."""

from service_world import client, live, world  # noqa: F401 (fixtures)
