"""The files of a restoration request, read into bytes: multipart form fields or base64 JSON.

Browsers and curl send multipart/form-data (``curl -F image=@photo.png``); scripts may send JSON
with the files base64-encoded. Both end as the same ``{field: bytes}``, so every check after this
(decoding, sizes, the mask) is shared. Missing or unknown fields are 422s naming the field.
"""

from __future__ import annotations

import base64
import binascii

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from ganops.serve.schemas import Strict

IMAGE_HELP = "PNG or JPEG file"
MASK_HELP = "PNG (or JPEG) of the image's size; every non-zero pixel is a hole to fill"


class ImageUpload(Strict):
    image: str = Field(description=f"base64 of the {IMAGE_HELP}")


class InpaintUpload(ImageUpload):
    mask: str = Field(description=f"base64 of the mask: {MASK_HELP}")


def request_body(fields: tuple[str, ...]) -> dict:
    """The OpenAPI requestBody of a restoration route: both content types, each field described."""
    form = {"image": {"type": "string", "format": "binary", "description": IMAGE_HELP}}
    if "mask" in fields:
        form["mask"] = {"type": "string", "format": "binary", "description": MASK_HELP}
    json_model = InpaintUpload if "mask" in fields else ImageUpload
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": form, "required": list(fields)}
            },
            "application/json": {"schema": json_model.model_json_schema()},
        },
    }


def _names(fields: tuple[str, ...]) -> str:
    return " and ".join(fields)


async def read_upload(request: Request, fields: tuple[str, ...]) -> dict[str, bytes]:
    """``{field: file bytes}`` of the request; ``mask`` may be absent (restore.prepare says what to do)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        return await _multipart(request, fields)
    if kind == "application/json":
        return await _json(request, fields)
    raise HTTPException(
        415,
        f"content-type: {kind or 'missing'}; send multipart/form-data with the file field(s) {_names(fields)}, "
        "or application/json with them base64-encoded",
    )


async def _multipart(request: Request, fields: tuple[str, ...]) -> dict[str, bytes]:
    try:  # a few parts more than the fields, so an extra one is named below rather than cut off here
        form = await request.form(max_files=len(fields) + 2, max_fields=len(fields) + 2)
    except StarletteHTTPException as err:  # Starlette's parser: malformed, or far more parts than asked for
        if err.status_code != 400:  # the body limit (413), already naming the body
            raise
        raise HTTPException(
            400, f"body: {err.detail} Send multipart/form-data with the file field(s) {_names(fields)} only"
        ) from None
    try:
        files = {}
        for name, value in form.multi_items():
            if name not in fields:
                raise HTTPException(422, f"{name}: unknown field; send {_names(fields)}")
            if not isinstance(value, UploadFile):
                raise HTTPException(
                    422, f"{name}: a text field; send the file itself (curl -F {name}=@file.png)"
                )
            files[name] = await value.read()
    finally:
        await form.close()
    if "image" not in files:
        raise HTTPException(422, f"image: missing; send the {IMAGE_HELP} as the form field `image`")
    return files


async def _json(request: Request, fields: tuple[str, ...]) -> dict[str, bytes]:
    model = InpaintUpload if "mask" in fields else ImageUpload
    try:
        body = model.model_validate_json(await request.body())
    except ValidationError as err:
        raise RequestValidationError(err.errors()) from None
    files = {}
    for name in fields:
        text = getattr(body, name)
        if text.startswith("data:"):  # a data URL, as a browser's FileReader writes it
            text = text.partition(",")[2]
        try:
            files[name] = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as err:
            raise HTTPException(
                422, f"{name}: not base64 ({err}); send the file's bytes base64-encoded"
            ) from None
    return files
