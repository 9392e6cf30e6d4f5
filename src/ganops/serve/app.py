"""The HTTP API: /v1/generate, /v1/interpolate, /healthz, /readyz, /metrics and the demo page at /.

Bad input is always a 4xx whose ``error`` names the field: pydantic validates bodies (strict
types, bounds from ServeSettings), a middleware caps body size before anything is parsed, and
the model's own constraints (class labels) are checked before a request is queued.
"""

import asyncio
import contextlib
import importlib.resources
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from ganops.serve import images
from ganops.serve.batcher import MicroBatcher, Overloaded
from ganops.serve.latents import interpolation_latents, seed_latents, with_class
from ganops.serve.metrics import ServeMetrics
from ganops.serve.schemas import PngList, Problem, request_models
from ganops.serve.session import GeneratorSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeSettings:
    max_n: int = 64  # images per request
    max_steps: int = 64  # images per interpolation
    max_batch: int = 256  # rows per ONNX run after micro-batching
    max_delay_ms: float = 2.0  # how long the oldest request may wait for company
    batching: bool = True
    max_body_bytes: int = 16_384
    max_pending_rows: int = 16_384  # beyond this the server answers 503 instead of queueing
    request_timeout_s: float = 30.0  # a request not answered by then gets 504 and leaves the queue
    # While this file exists /readyz answers 503, so a load balancer stops sending new requests
    # before shutdown (Kubernetes' preStop hook creates it; see deploy/k8s.yaml).
    drain_file: str | None = None


def _field(loc: tuple | list) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def _problem(
    status: int, error: str, detail: list[dict] | None = None, headers: dict | None = None
) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail or []}, status_code=status, headers=headers)


class BodyLimit:
    """Answers 413 for bodies over ``limit`` bytes, by Content-Length or while streaming."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                return await _problem(400, "content-length: not a number")(scope, receive, send)
            if int(declared) > self.limit:
                return await _problem(
                    413, f"body: {int(declared)} bytes is over the {self.limit}-byte limit"
                )(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:  # chunked upload without Content-Length
                raise HTTPException(413, f"body: over the {self.limit}-byte limit")
            return message

        return await self.app(scope, counted, send)


class Instrument:
    """Counts every request by route template and status, and times it to the last body byte."""

    def __init__(self, app, metrics: ServeMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        began, status = time.perf_counter(), 500

        async def watched(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            route = scope.get("route")
            self.metrics.observe_request(getattr(route, "path", "other"), status, time.perf_counter() - began)


def _page() -> str:
    return importlib.resources.files("ganops.serve").joinpath("static/index.html").read_text()


class ClientGone(Exception):
    """The client closed the connection before its images were ready."""


async def _unless_disconnected(request: Request, work, poll_s: float = 0.05):
    """Await ``work``, cancelling it if the client disconnects first (so its rows leave the queue)."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll_s)
            if done:
                return task.result()
            if await request.is_disconnected():
                raise ClientGone
    finally:  # gone, past the deadline (cancelled from outside) or done: the work never outlives us
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def create_app(session: GeneratorSession, settings: ServeSettings = ServeSettings()) -> FastAPI:
    info = session.info
    metrics = ServeMetrics()
    GenerateRequest, InterpolateRequest = request_models(settings.max_n, settings.max_steps)
    batcher = MicroBatcher(
        session.run,
        max_batch=max(settings.max_batch, settings.max_n, settings.max_steps),
        max_delay_ms=settings.max_delay_ms,
        enabled=settings.batching,
        max_pending_rows=settings.max_pending_rows,
        observe=metrics.observe_batch,
    )
    state: dict[str, Any] = {"ready": False}

    async def warm_up() -> None:
        # The first runs allocate ORT's arenas and pick kernels; do it before saying ready.
        try:
            for rows in (1, batcher.max_batch):
                await asyncio.to_thread(session.run, seed_latents(0, rows, info.latent_dim))
        except Exception as err:  # noqa: BLE001 - reported by /readyz, which then never turns ready
            state["error"] = f"{type(err).__name__}: {err}"
            log.exception("warm-up failed; /readyz stays 503")
            return
        state["ready"] = True
        metrics.ready.set(1)
        log.info("warm-up done; ready (model sha256 %s, provider %s)", session.sha256[:12], session.provider)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        batcher.start()
        warming = asyncio.create_task(warm_up())
        yield
        warming.cancel()
        await batcher.stop()

    # /docs and /redoc from the package's own Swagger UI and ReDoc files: they render offline.
    app = FastAPIOffline(
        title="ganops generator",
        version="1",
        summary="Images from the exported GAN generator, batched on ONNX Runtime.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(Instrument, metrics=metrics)
    page = _page()

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        detail = []
        for e in err.errors():
            field = _field(e.get("loc", ()))
            if e.get("type") == "json_invalid":
                field, message = "body", f"malformed JSON ({e.get('ctx', {}).get('error', 'cannot parse')})"
            else:
                message = e.get("msg", "invalid")
            detail.append({"field": field, "message": message, "type": e.get("type", "")})
        return _problem(422, "; ".join(f"{d['field']}: {d['message']}" for d in detail), detail)

    @app.exception_handler(StarletteHTTPException)  # also 404/405 from the router, in the same shape
    async def http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return _problem(err.status_code, str(err.detail), headers=getattr(err, "headers", None))

    def _conditioned(latents: np.ndarray, label: int | None) -> np.ndarray:
        """Latents for the requested class; without one, a conditional model draws classes from z."""
        if label is None:
            return latents
        if not info.class_cdf:
            raise HTTPException(422, "class: this model is unconditional; leave class out")
        try:
            return with_class(latents, label, list(info.class_cdf))
        except ValueError as err:
            raise HTTPException(422, f"class: {err}") from None

    async def _generate(request: Request, latents: np.ndarray, fmt: str, headers: dict[str, str]) -> Response:
        try:
            out = await asyncio.wait_for(
                _unless_disconnected(request, batcher.submit(latents)), settings.request_timeout_s
            )
        except Overloaded as err:
            return _problem(503, f"overloaded: {err}; retry shortly", headers={"Retry-After": "1"})
        except ClientGone:
            return Response(status_code=499)  # nobody reads it; the rows already left the queue
        except TimeoutError:
            return _problem(
                504, f"not answered within {settings.request_timeout_s:g} s; retry, or ask for fewer images"
            )
        headers = {**headers, "X-Model-Sha256": session.sha256, "X-Provider": session.provider}
        # Encoding runs in a worker thread: 64 images at 1024 px take long enough to stall /healthz.
        if fmt == "png":
            body = await asyncio.to_thread(images.png_grid, out)
            return Response(body, media_type="image/png", headers=headers)
        if fmt == "npy":
            return Response(images.npy_bytes(out), media_type="application/x-npy", headers=headers)
        pngs = await asyncio.to_thread(images.png_list_base64, out)
        body = PngList(shape=list(info.image_shape), images=pngs)
        return JSONResponse(body.model_dump(), headers=headers)

    responses = {
        200: {
            "description": "the images, in the requested format",
            "content": {
                "image/png": {"schema": {"type": "string", "format": "binary"}},
                "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": PngList.model_json_schema()},
            },
        },
        413: {"model": Problem, "description": "body too large"},
        422: {"model": Problem, "description": "invalid request; `error` names the field"},
        503: {"model": Problem, "description": "overloaded; retry"},
    }

    @app.post("/v1/generate", responses=responses, response_class=Response)
    async def generate(request: GenerateRequest, http: Request) -> Response:  # type: ignore[valid-type]
        """`n` images for `seed`; image i is the same for every n > i."""
        latents = _conditioned(seed_latents(request.seed, request.n, info.latent_dim), request.class_)
        return await _generate(http, latents, request.format, {"X-Seed": str(request.seed)})

    @app.post("/v1/interpolate", responses=responses, response_class=Response)
    async def interpolate(request: InterpolateRequest, http: Request) -> Response:  # type: ignore[valid-type]
        """`steps` images along the arc from `seed_a`'s first image to `seed_b`'s."""
        path = interpolation_latents(request.seed_a, request.seed_b, request.steps, info.latent_dim)
        return await _generate(http, _conditioned(path, request.class_), request.format, {})

    @app.get("/healthz")
    async def healthz() -> dict:
        """The process is up (liveness)."""
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"model": Problem, "description": "still warming up"}})
    async def readyz() -> Any:
        """The model is loaded and a warm-up run is done (readiness)."""
        if "error" in state:
            return _problem(503, f"warm-up failed: {state['error']}; check the server log and the model")
        if settings.drain_file and os.path.exists(settings.drain_file):
            return _problem(503, f"draining: {settings.drain_file} exists (the server is about to stop)")
        if not state["ready"]:
            return _problem(503, "warming up: the model's first run has not finished")
        return {
            "status": "ready",
            "model": session.origin,
            "sha256": session.sha256,
            "provider": session.provider,
            "latent_dim": info.latent_dim,
            "image_shape": list(info.image_shape),
            "num_classes": len(info.class_cdf),
            "max_n": settings.max_n,
            "max_steps": settings.max_steps,
            "batching": settings.batching,
            "max_batch": batcher.max_batch,
            "max_delay_ms": settings.max_delay_ms,
        }

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def prometheus() -> Response:
        """Prometheus metrics: requests, latency, batch sizes, errors."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def demo() -> HTMLResponse:
        return HTMLResponse(page)

    app.state.metrics, app.state.batcher, app.state.settings = metrics, batcher, settings
    return app
