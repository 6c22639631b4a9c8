"""The service world's fixtures (``world``, ``client``, ``live``) for the attack tests."""

from service_world import client, live, world  # noqa: F401 (fixtures)
