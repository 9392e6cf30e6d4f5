"""Request bodies. Limits come from the server's settings, so they are built per app and show in OpenAPI.

Models are strict (``"5"`` is not an int, ``true`` is not a seed) and forbid unknown keys, so a
typo such as ``seeds`` is a 422 naming it instead of a silently ignored field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ganops.serve.latents import MAX_SEED

Format = Literal["png", "png_list", "npy"]
FORMAT_HELP = (
    "png: one PNG grid; png_list: JSON with one base64 PNG per image; npy: float32 (n, C, H, W) in [-1, 1]"
)


def _integral(value: Any) -> Any:
    # JSON Schema's "integer" includes 6.0, and some JSON encoders write whole numbers that way;
    # strings, booleans and 6.5 still fail the strict int check.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Int = Annotated[int, BeforeValidator(_integral)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=False)


def request_models(max_n: int, max_steps: int) -> tuple[type[Strict], type[Strict]]:
    class GenerateRequest(Strict):
        n: Int = Field(ge=1, le=max_n, description=f"number of images, 1..{max_n}")
        seed: Int = Field(ge=0, le=MAX_SEED, description="same seed, same images (as `ganops sample --seed`)")
        class_: Int | None = Field(
            None,
            alias="class",
            ge=0,
            description="class label (conditional models only); without it the model draws classes from the latents",
        )
        format: Format = Field("png", description=FORMAT_HELP)

    class InterpolateRequest(Strict):
        seed_a: Int = Field(ge=0, le=MAX_SEED, description="start: the first image of this seed")
        seed_b: Int = Field(ge=0, le=MAX_SEED, description="end: the first image of this seed")
        steps: Int = Field(
            8, ge=2, le=max_steps, description=f"images on the path, ends included, 2..{max_steps}"
        )
        class_: Int | None = Field(
            None,
            alias="class",
            ge=0,
            description="class label (conditional models only); without it the model draws classes from the latents",
        )
        format: Format = Field("png", description=FORMAT_HELP)

    return GenerateRequest, InterpolateRequest


class PngList(BaseModel):
    shape: list[int] = Field(description="C, H, W of each image")
    images: list[str] = Field(description="base64-encoded PNG files")


class Problem(BaseModel):
    error: str = Field(description="one line naming the field(s) and the rule")
    detail: list[dict] = Field(default_factory=list)
