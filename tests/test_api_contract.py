"""The JSON API against its OpenAPI description (web/openapi.json, served at /openapi.json):
the README documents the same endpoints and fields, and Schemathesis fuzzes every endpoint
with data that fits the schema and data that does not. Whatever it sends: no 5xx, no
traceback, every error a JSON object with its message and status, answers as described."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.test_web_helpers import build_catalog, build_pipeline, web_config, write_scenes

README = Path(__file__).resolve().parents[1] / "README.md"
#: examples per endpoint, half fitting the schema and half not (a few hundred in all)
BUDGET = {
    ("POST", "/api/look"): 70,
    ("POST", "/api/events"): 70,
    ("GET", "/api/products/{product_id}"): 40,
    ("GET", "/api/users/{user_id}"): 30,
    ("GET", "/api/scenes"): 8,
    ("GET", "/healthz"): 8,
    ("GET", "/openapi.json"): 4,
}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from web import create_app, services_of

    root = tmp_path_factory.mktemp("contract")
    catalog = build_catalog(root)
    scenes = write_scenes(root / "scenes", catalog)
    app = create_app(web_config(root, build_pipeline(catalog), scenes, UPLOAD_QUOTA_TOTAL=10_000))
    yield app
    services_of(app).close()


@pytest.fixture(scope="module")
def schema(app):
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


def test_every_operation_is_fuzzed(client_schema_doc):
    operations = {
        (method.upper(), path)
        for path, item in client_schema_doc["paths"].items()
        for method in item
    }
    assert operations == set(BUDGET)


@pytest.fixture(scope="module")
def client_schema_doc(app):
    """The description as the site serves it."""
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200 and response.get_json()["openapi"].startswith("3.")
    return response.get_json()


# -- the README says the same ---------------------------------------------------------------
def _readme_api() -> str:
    text = README.read_text()
    return text[text.index("## Web pages and JSON API") : text.index("### Images")]


def test_the_readme_documents_exactly_the_described_endpoints(schema):
    headings = [line for line in _readme_api().splitlines() if line.startswith("### ")]
    documented = set()
    for line in headings:
        for method, path in re.findall(r"\b(GET|POST) (/[^\s,]+)", line):
            documented.add((method, re.sub(r"&lt;(\w+)&gt;", r"{\1}", path)))
    assert documented == set(BUDGET)


def _table_fields(section: str) -> set[str]:
    text = _readme_api()
    block = text[text.index(section) :]
    block = block[: block.index("```")]
    rows = [line for line in block.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}


def test_the_readme_field_tables_match_the_schema():
    from web.api import openapi_document

    doc = openapi_document()
    look = doc["paths"]["/api/look"]["post"]["requestBody"]["content"]
    fields = set(look["application/json"]["schema"]["properties"]) | {"image"}
    assert _table_fields("### POST /api/look") == fields
    assert set(look["multipart/form-data"]["schema"]["properties"]) == fields
    event = doc["components"]["schemas"]["Event"]["properties"]
    assert _table_fields("### POST /api/events") == set(event)


# -- fuzzing --------------------------------------------------------------------------------
def _aim(case, level: int) -> None:
    """Now and then point a case at things that exist (level 1), and leave out more of what
    was drawn (level 2), so that the code past the checks runs too."""
    if not level:
        return
    if case.path == "/api/look" and isinstance(case.body, dict) and "image" not in case.body:
        case.body["scene_id"] = "room-a"
    elif case.path == "/api/events" and isinstance(case.body, dict):
        events = (
            case.body.get("events") if isinstance(case.body.get("events"), list) else [case.body]
        )
        for event in events:
            if isinstance(event, dict):
                event.update(product_id="P000", user_id="fuzz", event_type="click")
                event.pop("user", None)
    elif case.path_parameters and "product_id" in case.path_parameters:
        case.path_parameters["product_id"] = "P000"


def _check_answer(case, response) -> None:
    text = response.text
    assert "Traceback" not in text, text[:500]
    assert response.status_code < 500, (
        f"{case.method} {case.path}: {response.status_code} {text[:300]}"
    )
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict) and body.get("status") == response.status_code, text[:300]
        assert isinstance(body.get("error"), str) and body["error"].strip(), text[:300]


@pytest.mark.parametrize("method, path", sorted(BUDGET))
def test_fuzz_endpoint(schema, method, path):
    operation = schema[path][method]
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=BUDGET[(method, path)],
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, level=st.integers(0, 2))
    def fuzz(case, level):
        _aim(case, level)
        response = case.call()
        _check_answer(case, response)
        if case.meta is None or case.meta.generation.mode == GenerationMode.POSITIVE:
            case.validate_response(
                response,
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                ],
            )

    fuzz()
