"""The HTTP API fuzzed from its own OpenAPI schema (schemathesis), on both databases.

Every generated request — valid and deliberately invalid parameters, bodies, ids at and beyond
what the databases store — must get a documented status, a body matching the documented schema,
the right headers (``Allow`` on 405) and never a server error. Bounded: a fixed number of examples
per operation (``ANBU_FUZZ_EXAMPLES``, default 40), so the run takes about a minute per backend.
"""

from __future__ import annotations

import os

import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from collector.store.db import Database
from tests.collector.conftest import API_TOKEN
from tests.collector.test_api_dispatches import add_dispatch

EXAMPLES = int(os.environ.get("ANBU_FUZZ_EXAMPLES", "40"))


def test_every_answer_is_documented_and_none_is_a_server_error(
    app: FastAPI, database: Database
) -> None:
    add_dispatch(database, "h0001", notifications=1)  # so that ids in paths sometimes exist
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            # A cursor is opaque: no schema can say which strings this API made, so a
            # well-formed but made-up one is a 422, which that one check would call wrong.
            made_up_cursor = bool(case.query and "cursor" in case.query)
            case.call_and_validate(
                headers={"Authorization": f"Bearer {API_TOKEN}"},
                excluded_checks=[positive_data_acceptance] if made_up_cursor else [],
            )

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # report every operation's failure
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:2000]
    assert operations >= 10
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())


def test_405_names_every_method_of_the_path(client: TestClient, app: FastAPI) -> None:
    """``Allow`` lists what the schema documents for the path, on every path."""
    for path, operations in app.openapi()["paths"].items():
        concrete = path.replace("{household_id}", "h0001").replace("{device_id}", "d0001")
        concrete = concrete.replace("{dispatch_id}", "1")
        response = client.request("PATCH", concrete)
        assert response.status_code == 405, path
        assert response.headers["Allow"] == ", ".join(sorted(m.upper() for m in operations))
