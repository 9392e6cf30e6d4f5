"""The routes of a sampling generator: POST /v1/generate and /v1/interpolate (latents from seeds).

No ``from __future__ import annotations`` here: FastAPI must see the request models built per app
(schemas.request_models) as classes, not as names it cannot resolve.
"""

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from ganops.serve import images
from ganops.serve.batcher import MicroBatcher
from ganops.serve.latents import interpolation_latents, seed_latents, with_class
from ganops.serve.schemas import PngList, Problem, request_models
from ganops.serve.session import GeneratorSession, ModelInfo

# Awaits the latents' images within the request's deadline (app.py: 503, 504 or a client gone).
Queue = Callable[[Request, Awaitable[np.ndarray]], Awaitable[np.ndarray]]


def warm_up_inputs(info: ModelInfo, max_batch: int) -> list[np.ndarray]:
    """A single row and a full batch: the sizes ORT's arenas must hold."""
    return [seed_latents(0, rows, info.latent_dim) for rows in (1, max_batch)]


def ready_facts(info: ModelInfo, settings) -> dict:
    return {
        "latent_dim": info.latent_dim,
        "image_shape": list(info.image_shape),
        "num_classes": len(info.class_cdf),
        "max_n": settings.max_n,
        "max_steps": settings.max_steps,
    }


def add_sampler_routes(
    app: FastAPI, session: GeneratorSession, batcher: MicroBatcher, settings, queued: Queue
) -> None:
    info: ModelInfo = session.info
    GenerateRequest, InterpolateRequest = request_models(settings.max_n, settings.max_steps)

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
        out = await queued(request, batcher.submit(latents))
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
