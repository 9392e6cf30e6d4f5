"""The HTTP API through a real uvicorn server on a free loopback port."""

import base64
import io
import subprocess
import sys

import httpx
import numpy as np
import pytest
from PIL import Image

from ganops.serve.app import ServeSettings, create_app
from ganops.serve.session import GeneratorSession
from ganops.serve.source import resolve
from serve_helpers import SPEC, export_tiny, uvicorn_thread

MAX_N = 16


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("serve-api"))


@pytest.fixture(scope="module")
def base(layout):
    session = GeneratorSession(resolve(str(layout.onnx)), "cpu")
    settings = ServeSettings(max_n=MAX_N, max_steps=MAX_N, max_batch=64, max_delay_ms=2, max_body_bytes=4096)
    with uvicorn_thread(create_app(session, settings)) as url:
        yield url


def post(base, route, body, **kw):
    return httpx.post(f"{base}{route}", json=body, timeout=30, **kw)


def npy(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-npy"
    return np.load(io.BytesIO(response.content), allow_pickle=False)


def test_health_and_readiness(base):
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{base}/readyz").json()
    assert ready["status"] == "ready" and ready["provider"] == "CPUExecutionProvider"
    assert ready["latent_dim"] == SPEC.latent_dim and ready["max_n"] == MAX_N


def test_png_grid_png_list_and_npy_agree(base):
    arrays = npy(post(base, "/v1/generate", {"n": 5, "seed": 11, "format": "npy"}))
    assert arrays.shape == (5, 1, 16, 16) and arrays.dtype == np.float32
    assert -1.0 <= arrays.min() and arrays.max() <= 1.0 and arrays.std() > 0.01

    grid = post(base, "/v1/generate", {"n": 5, "seed": 11})
    assert grid.status_code == 200 and grid.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(grid.content)).size == (
        3 * 18 + 2,
        2 * 18 + 2,
    )  # 3 columns, 2 rows, 2 px padding

    listed = post(base, "/v1/generate", {"n": 5, "seed": 11, "format": "png_list"}).json()
    assert listed["shape"] == [1, 16, 16] and len(listed["images"]) == 5
    first = np.asarray(Image.open(io.BytesIO(base64.b64decode(listed["images"][0]))))
    expected = np.clip(((arrays[0, 0] + 1) / 2) * 255 + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(first, expected)


def test_same_seed_same_images_and_a_prefix_for_smaller_n(base):
    a = npy(post(base, "/v1/generate", {"n": 8.0, "seed": 123, "format": "npy"}))  # JSON Schema integer
    b = npy(post(base, "/v1/generate", {"n": 3, "seed": 123, "format": "npy"}))
    c = npy(post(base, "/v1/generate", {"n": 3, "seed": 124, "format": "npy"}))
    assert np.array_equal(a[:3], b) and not np.array_equal(b, c)


def test_interpolation_runs_from_one_seed_to_the_other(base):
    path = npy(post(base, "/v1/interpolate", {"seed_a": 1, "seed_b": 2, "steps": 6, "format": "npy"}))
    first = npy(post(base, "/v1/generate", {"n": 1, "seed": 1, "format": "npy"}))
    last = npy(post(base, "/v1/generate", {"n": 1, "seed": 2, "format": "npy"}))
    assert path.shape == (6, 1, 16, 16)
    np.testing.assert_allclose(path[0], first[0], atol=1e-5)
    np.testing.assert_allclose(path[-1], last[0], atol=1e-5)
    steps = [float(np.abs(path[i + 1] - path[i]).mean()) for i in range(5)]
    assert all(s > 0 for s in steps)


def test_images_match_ganops_sample_for_the_same_seed(base, layout, tmp_path):
    out = tmp_path / "sample.npy"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ganops",
            "sample",
            str(layout.onnx),
            "--seed",
            "77",
            "-n",
            "9",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    served = npy(post(base, "/v1/generate", {"n": 9, "seed": 77, "format": "npy"}))
    assert np.array_equal(np.load(out), served)  # bit for bit on the same (CPU) provider
    grid = tmp_path / "sample.png"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ganops",
            "sample",
            str(layout.onnx),
            "--seed",
            "77",
            "-n",
            "9",
            "-o",
            str(grid),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert grid.read_bytes() == post(base, "/v1/generate", {"n": 9, "seed": 77}).content


BAD = [
    ({"seed": 1}, "n"),
    ({"n": 1}, "seed"),
    ({"n": "3", "seed": 1}, "n"),
    ({"n": 2.5, "seed": 1}, "n"),
    ({"n": True, "seed": 1}, "n"),
    ({"n": 0, "seed": 1}, "n"),
    ({"n": MAX_N + 1, "seed": 1}, "n"),
    ({"n": 1, "seed": -1}, "seed"),
    ({"n": 1, "seed": 2**32}, "seed"),
    ({"n": 1, "seed": "x"}, "seed"),
    ({"n": 1, "seed": 1, "format": "gif"}, "format"),
    ({"n": 1, "seed": 1, "format": None}, "format"),
    ({"n": 1, "seed": 1, "class": 3}, "class"),
    ({"n": 1, "seed": 1, "seeds": 2}, "seeds"),
    ([1, 2], "body"),
    ("n=1", "body"),
]


@pytest.mark.parametrize(("body", "field"), BAD, ids=[f"{f}:{b!r}" for b, f in BAD])
def test_bad_generate_requests_are_4xx_naming_the_field(base, body, field):
    response = post(base, "/v1/generate", body)
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith(f"{field}:") or f"; {field}:" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"seed_a": 1}, "seed_b"),
        ({"seed_a": 1, "seed_b": 2, "steps": 1}, "steps"),
        ({"seed_a": 1, "seed_b": 2, "steps": MAX_N + 1}, "steps"),
        ({"seed_a": 1.5, "seed_b": 2}, "seed_a"),
        ({"seed_a": 1, "seed_b": 2, "format": "jpeg"}, "format"),
    ],
)
def test_bad_interpolate_requests_are_4xx_naming_the_field(base, body, field):
    response = post(base, "/v1/interpolate", body)
    assert response.status_code == 422 and response.json()["error"].startswith(f"{field}:")


@pytest.mark.parametrize(
    "raw",
    [b'{"n": 2, "seed": ', b"{'n': 2}", b"\xff\xfe\x00garbage", b"", b"NaN"],
    ids=["truncated", "single-quotes", "binary", "empty", "nan"],
)
def test_malformed_json_is_a_4xx_about_the_body(base, raw):
    response = httpx.post(
        f"{base}/v1/generate", content=raw, headers={"content-type": "application/json"}, timeout=30
    )
    assert 400 <= response.status_code < 500
    assert response.json()["error"].startswith("body:")


def test_oversized_bodies_are_413_with_or_without_content_length(base):
    big = {"n": 1, "seed": 1, "pad": "x" * 5000}
    declared = post(base, "/v1/generate", big)
    assert declared.status_code == 413 and declared.json()["error"].startswith("body:")

    def chunks():  # a streamed body has no Content-Length; the limit must still hold
        for _ in range(10):
            yield b" " * 1000

    streamed = httpx.post(
        f"{base}/v1/generate", content=chunks(), headers={"content-type": "application/json"}, timeout=30
    )
    assert streamed.status_code == 413


def test_unknown_routes_and_methods_are_4xx(base):
    assert httpx.get(f"{base}/v1/nothing").status_code == 404
    assert httpx.get(f"{base}/v1/generate").status_code == 405


def test_metrics_count_requests_batches_and_errors(base):
    post(base, "/v1/generate", {"n": 2, "seed": 1, "format": "npy"})
    post(base, "/v1/generate", {"n": 0, "seed": 1})
    text = httpx.get(f"{base}/metrics").text
    assert 'ganops_requests_total{route="/v1/generate",status="200"}' in text
    assert 'ganops_errors_total{kind="client",route="/v1/generate"}' in text
    assert "ganops_request_seconds_bucket" in text and "ganops_batch_size_bucket" in text
    assert "ganops_ready 1.0" in text


def test_demo_page_and_openapi_are_served(base):
    page = httpx.get(f"{base}/")
    assert page.status_code == 200 and "/v1/interpolate" in page.text
    spec = httpx.get(f"{base}/openapi.json").json()
    generate = spec["components"]["schemas"]["GenerateRequest"]["properties"]
    assert generate["n"]["maximum"] == MAX_N and generate["seed"]["maximum"] == 2**32 - 1
