"""The HTTP API: the model's task routes, /healthz, /readyz, /metrics and the demo page at /.

The routes follow the task in the model's metadata: a sampler gets /v1/generate and /v1/interpolate
(sampler_api.py), a restoration model only its own /v1/inpaint, /v1/upscale or /v1/colorize
(restoration_api.py). Bad input is always a 4xx whose ``error`` names the field: pydantic validates
bodies (strict types, bounds from ServeSettings), a middleware caps body size before anything is
parsed, and the model's own constraints (class labels, image sizes) are checked before a request
is queued.
"""

import asyncio
import contextlib
import importlib.resources
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ganops.cards import card
from ganops.serve import restoration_api, sampler_api
from ganops.serve.batcher import MicroBatcher, Overloaded
from ganops.serve.contract import RestoreLimits
from ganops.serve.metrics import ServeMetrics
from ganops.serve.restore import BadInput
from ganops.serve.schemas import Problem
from ganops.serve.session import GeneratorSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeSettings:
    max_n: int = 64  # images per request
    max_steps: int = 64  # images per interpolation
    max_batch: int = 256  # rows per ONNX run after micro-batching
    max_delay_ms: float = 2.0  # how long the oldest request may wait for company
    batching: bool = True
    max_body_bytes: int = 16_384  # a sampler's JSON requests
    max_upload_bytes: int = 32 * 2**20  # a restoration model's uploads (base64 JSON is 4/3 of the file)
    restore: RestoreLimits = RestoreLimits()  # pixel limit, tiling and batch of restoration requests
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


def _page(task: str) -> str:
    name = "restore.html" if card(task).image_to_image else "index.html"
    return importlib.resources.files("ganops.serve").joinpath(f"static/{name}").read_text()


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
    sampler = card(info.task).image_to_image is None
    metrics = ServeMetrics()
    # A sampler's rows are latents; a restoration model's are whole images or tiles.
    rows_per_run = (
        max(settings.max_batch, settings.max_n, settings.max_steps) if sampler else settings.restore.batch
    )
    batcher = MicroBatcher(
        session.run,
        max_batch=rows_per_run,
        max_delay_ms=settings.max_delay_ms,
        enabled=settings.batching,
        max_pending_rows=settings.max_pending_rows,
        observe=metrics.observe_batch,
    )
    state: dict[str, Any] = {"ready": False}

    async def warm_up() -> None:
        # The first runs allocate ORT's arenas and pick kernels; do it before saying ready.
        if sampler:
            examples = sampler_api.warm_up_inputs(info, batcher.max_batch)
        else:
            examples = [restoration_api.warm_up_input(info)]
        try:
            for example in examples:
                await asyncio.to_thread(session.run, example)
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
        title="ganops generator" if sampler else f"ganops {info.task}",
        version="1",
        summary="Images from the exported GAN generator, batched on ONNX Runtime.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes if sampler else settings.max_upload_bytes)
    app.add_middleware(Instrument, metrics=metrics)
    page = _page(info.task)

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

    @app.exception_handler(BadInput)  # an upload that decodes badly or breaks the model's contract
    async def bad_upload(_: Request, err: BadInput) -> JSONResponse:
        return _problem(422, str(err), [{"field": err.field, "message": str(err).split(": ", 1)[1]}])

    @app.exception_handler(ClientGone)  # while its rows were queued
    @app.exception_handler(ClientDisconnect)  # while its upload was still arriving
    async def client_gone(_: Request, __: Exception) -> Response:
        return Response(status_code=499)  # nobody reads it; nothing of it stays queued

    async def queued(request: Request, work):
        """``work`` (rows queued on the batcher) within the deadline, cancelled if the client leaves."""
        try:
            return await asyncio.wait_for(_unless_disconnected(request, work), settings.request_timeout_s)
        except Overloaded as err:
            raise HTTPException(
                503, f"overloaded: {err}; retry shortly", headers={"Retry-After": "1"}
            ) from None
        except TimeoutError:
            raise HTTPException(
                504,
                f"not answered within {settings.request_timeout_s:g} s; retry, or ask for less (fewer or smaller images)",
            ) from None

    if sampler:
        sampler_api.add_sampler_routes(app, session, batcher, settings, queued)
    else:
        restoration_api.add_restoration_route(app, session, batcher, settings.restore, queued)

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
        if sampler:
            facts = sampler_api.ready_facts(info, settings)
        else:
            facts = restoration_api.ready_facts(info, settings.restore)
        return {
            "status": "ready",
            "model": session.origin,
            "sha256": session.sha256,
            "provider": session.provider,
            **facts,
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
