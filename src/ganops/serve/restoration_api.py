"""The route of an image-to-image model (POST /v1/inpaint, /v1/upscale, ...: its task card's route)
and its classical baseline's, with the card's fields and summary.

The upload (uploads.py) is decoded, padded and cut into batches in a worker thread (restore.prepare),
the batches are queued on the micro-batcher like a sampler's latents (requests of the same padded
size share a model run), and the PNG is assembled in a worker thread again: the event loop only
waits, so /healthz and /readyz answer while large images are processed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ganops.cards import card
from ganops.serve import restore
from ganops.serve.batcher import MicroBatcher
from ganops.serve.contract import RestorationInfo, RestoreLimits, trained_on_json
from ganops.serve.schemas import Problem
from ganops.serve.session import GeneratorSession
from ganops.serve.uploads import read_upload, request_body

# Awaits the batches' outputs within the request's deadline (app.py: 503, 504 or a client gone).
Queue = Callable[[Request, Awaitable[list[np.ndarray]]], Awaitable[list[np.ndarray]]]
WARNING = "X-Ganops-Warning"  # restore.fit_warning: the upload's colour does not fit the model's data
WARNED = {
    WARNING: {
        "description": "why the answer may not look like the upload, and the fix",
        "schema": {"type": "string"},
    }
}


def warm_up_input(info: RestorationInfo) -> np.ndarray:
    """One image of the trained size, for the run that precedes readiness."""
    side = info.trained_input_side
    return np.zeros((1, info.input_channels, side, side), np.float32)


def ready_facts(info: RestorationInfo, limits: RestoreLimits) -> dict:
    facts = info.facts
    return {
        "task": info.task,
        "route": facts.route,
        "fields": list(facts.fields),
        "input_channels": info.input_channels,
        "output_channels": info.output_channels,
        "size_multiple": info.size_multiple,
        "scale": info.scale,
        "max_pixels": limits.max_pixels,
        "tile_size": limits.tile_size if facts.tiled else None,
        "tile_overlap": limits.tile_overlap if facts.tiled else None,
        "baseline": facts.baseline.title,
        "baseline_route": f"{facts.route}/baseline",
        "trained_on": trained_on_json(info.trained_on),
    }


def _answers(image: str, problems: dict[int, str], headers: dict | None = None) -> dict:
    """The documented answers of an upload route: the PNG (with ``headers``), the upload's problems, and
    ``problems``."""
    png = {"image/png": {"schema": {"type": "string", "format": "binary"}}}
    return {
        200: {"description": image, "content": png, **({"headers": headers} if headers else {})},
        413: {"model": Problem, "description": "body too large"},
        415: {"model": Problem, "description": "neither multipart/form-data nor JSON"},
        422: {"model": Problem, "description": "bad upload; `error` names the field"},
        **{code: {"model": Problem, "description": text} for code, text in problems.items()},
    }


def add_restoration_route(
    app: FastAPI,
    session: GeneratorSession,
    batcher: MicroBatcher,
    limits: RestoreLimits,
    queued: Queue,
) -> None:
    info: RestorationInfo = session.info
    facts = info.facts
    fields = facts.fields
    headers = {"X-Model-Sha256": session.sha256, "X-Provider": session.provider}

    async def run_all(batches: list[np.ndarray]) -> list[np.ndarray]:
        return [await batcher.submit(batch) for batch in batches]

    async def restoration(http: Request) -> Response:
        files = await read_upload(http, fields)
        plan = await asyncio.to_thread(restore.prepare, info, limits, files["image"], files.get("mask"))
        outputs = await queued(http, run_all(plan.batches))
        png = await asyncio.to_thread(restore.finish, plan, outputs)
        if plan.warning is None:
            return Response(png, media_type="image/png", headers=headers)
        # Header values are latin-1: a source name from the metadata must not turn the answer into a 500.
        text = plan.warning.encode("ascii", "backslashreplace").decode()
        return Response(png, media_type="image/png", headers={**headers, WARNING: text})

    app.add_api_route(
        facts.route,
        restoration,
        methods=["POST"],
        summary=card(info.task).summary,
        description=(
            f"Send {' and '.join(fields)} as multipart/form-data files, or as base64 strings in JSON. "
            f"Any height and width up to {limits.max_pixels:,} pixels; the answer is a PNG "
            f"({info.output_channels} channel(s), {info.scale}x the input's size)."
        ),
        response_class=Response,
        openapi_extra={"requestBody": request_body(fields)},
        responses=_answers("the restored image", {503: "overloaded; retry"}, WARNED),
    )

    async def baseline(http: Request) -> Response:
        files = await read_upload(http, fields)
        try:
            png = await asyncio.to_thread(
                restore.baseline_bytes, info, limits, files["image"], files.get("mask")
            )
        except restore.BaselineUnavailable as err:
            return JSONResponse({"error": str(err)}, status_code=501)
        return Response(png, media_type="image/png", headers=headers)

    name = facts.baseline.title
    app.add_api_route(
        f"{facts.route}/baseline",
        baseline,
        methods=["POST"],
        summary=f"The classical method ({name}) on the same upload, for comparison (no model).",
        description=(
            f"The same fields and limits as {facts.route}; the answer is what a user has without "
            f"a GAN, as the evaluate stage scores it beside the model: {name}."
        ),
        response_class=Response,
        openapi_extra={"requestBody": request_body(fields)},
        responses=_answers(
            f"the image restored by {name}", {501: "the method's library is not installed here"}
        ),
    )
