"""The service world's fixtures (``world``, ``client``) for the care endpoint tests."""

from service_world import client, world  # noqa: F401 (fixtures)
