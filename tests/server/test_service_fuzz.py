"""Schema-based fuzzing of every endpoint against the app's own OpenAPI: never a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from service_world import make_world

from feedwise.server.app import create_app


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx, value) -> bytes:  # noqa: ANN001
    return value.encode() if isinstance(value, str) else bytes(str(value), "utf-8")


@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory):
    world = make_world(tmp_path_factory.mktemp("fuzz"), max_body_bytes=200_000)
    app = create_app(world.settings)
    with TestClient(app):  # runs the lifespan: store, writer, model
        yield world, app


def test_no_endpoint_answers_5xx(fuzz_world):
    world, app = fuzz_world
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {world.admin}"}
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 15
    tried = []
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=8, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case) -> None:  # noqa: ANN001
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        run()
        tried.append(f"{op.method.upper()} {op.path}")
    assert "POST /v1/events" in tried and "GET /v1/users/{user_id}/feed" in tried
