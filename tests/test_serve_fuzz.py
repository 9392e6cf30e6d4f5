"""Schemathesis fuzzes every operation of the server's OpenAPI schema: no input may cause a 5xx.

Positive cases fit the schema (so they exercise real generation at every bound); negative cases
break it on purpose (wrong types, out-of-range numbers, missing and extra keys). Both are
bounded (max_examples) and derandomized, so the run is short and repeatable.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from ganops.serve.app import ServeSettings, create_app
from ganops.serve.session import GeneratorSession
from ganops.serve.source import resolve
from serve_helpers import export_tiny, uvicorn_thread


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    layout = export_tiny(tmp_path_factory.mktemp("serve-fuzz"))
    session = GeneratorSession(resolve(str(layout.onnx)), "cpu")
    with uvicorn_thread(create_app(session, ServeSettings(max_n=8, max_steps=8))) as url:
        yield url


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_causes_a_server_error(base, mode):
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    seen: dict[int, int] = {}

    @given(case=schema.as_strategy(generation_mode=mode))
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def check(case):
        response = case.call(base_url=base, timeout=30)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (
            f"{case.method} {case.path} {case.body!r} -> {response.status_code}"
        )
        case.validate_response(response, checks=[not_a_server_error])

    check()
    assert sum(seen.values()) >= 50 and all(code < 500 for code in seen)
    if mode == GenerationMode.POSITIVE:
        assert seen.get(200, 0) > 0  # valid requests really generated images
    else:
        assert any(400 <= code < 500 for code in seen)  # invalid ones were really refused
