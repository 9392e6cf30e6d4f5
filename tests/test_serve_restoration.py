"""Restoration models served: one route per task, uploads as multipart or base64 JSON, any size, tiles,
bad uploads answered with a 4xx naming the field, and `ganops restore` giving the server's bytes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import io
import subprocess
import sys
import zlib

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ganops import colour
from ganops.cards import card
from ganops.cli import app as cli
from ganops.files import write_json
from ganops.serve import restore
from ganops.serve.app import ServeSettings, create_app
from ganops.serve.batcher import MicroBatcher
from ganops.serve.contract import UNKNOWN, RestoreLimits, TrainedOn
from ganops.serve.images import to_uint8
from ganops.serve.session import GeneratorSession
from ganops.serve.source import resolve
from ganops.stages import Layout
from serve_helpers import export_tiny, export_tiny_restoration, uvicorn_thread

ROUTES = {task: card(task).image_to_image.route for task in ("inpaint", "superres", "colorize", "translate")}
PARITY_TOLERANCE = 1e-3  # export.parity_tolerance's default
# Small limits, so the pixel limit, tiling and the body limit are reached with tiny images.
LIMITS = RestoreLimits(max_pixels=48 * 48, tile_size=16, tile_overlap=8, batch=4)
SETTINGS = ServeSettings(max_upload_bytes=64 * 1024, restore=LIMITS, max_delay_ms=1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return {task: export_tiny_restoration(tmp_path_factory.mktemp(task), task).onnx for task in ROUTES}


@pytest.fixture(scope="module")
def servers(models):
    """task -> (base URL, session, app) of a real uvicorn server for each tiny model."""
    with contextlib.ExitStack() as stack:
        running = {}
        for task, onnx in models.items():
            session = GeneratorSession(resolve(str(onnx)), "cpu", threads=1)
            app = create_app(session, SETTINGS)
            running[task] = (stack.enter_context(uvicorn_thread(app)), session, app)
        yield running


def png(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def picture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth colour image with some texture, (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:height, :width]
    base = np.stack([x * 5 % 256, y * 7 % 256, (x + y) * 3 % 256], axis=-1)
    return (base + rng.integers(0, 30, base.shape)).clip(0, 255).astype(np.uint8)


def hole(height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[height // 4 : height // 2 + 1, width // 3 : 2 * width // 3 + 1] = 255
    return mask


def upload(task: str, pixels: np.ndarray, mask: np.ndarray | None = None) -> dict[str, bytes]:
    files = {"image": png(pixels)}
    if task == "inpaint":
        files["mask"] = png(hole(*pixels.shape[:2]) if mask is None else mask)
    return files


def post(base: str, task: str, files: dict[str, bytes], as_json: bool = False) -> httpx.Response:
    if as_json:
        body = {k: base64.b64encode(v).decode() for k, v in files.items()}
        return httpx.post(f"{base}{ROUTES[task]}", json=body, timeout=30)
    return httpx.post(
        f"{base}{ROUTES[task]}", files={k: (f"{k}.png", v) for k, v in files.items()}, timeout=30
    )


def decoded(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)))


def luma(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float64) @ np.array(colour.LUMA_WEIGHTS)


@pytest.mark.parametrize("task", list(ROUTES))
def test_multipart_and_json_uploads_give_the_same_png(servers, task):
    base = servers[task][0]
    pixels = picture(24, 20)
    files = upload(task, pixels)
    as_form, as_json = post(base, task, files), post(base, task, files, as_json=True)
    out = decoded(as_form)
    assert as_form.content == as_json.content
    scale = 2 if task == "superres" else 1
    assert out.shape == (24 * scale, 20 * scale, 3)
    if task == "inpaint":  # the known pixels come back exactly
        known = hole(24, 20) == 0
        assert np.array_equal(out[known], pixels[known]) and not np.array_equal(out, pixels)
    if task == "colorize":  # the output keeps the upload's luminance (up to 8-bit rounding and clamping)
        assert np.mean(np.abs(luma(out) - luma(pixels))) < 2.0
    jpeg = post(base, task, {**files, "image": png(pixels, "JPEG")})  # JPEG in, PNG out
    assert decoded(jpeg).shape == out.shape


@pytest.mark.parametrize("task", list(ROUTES))
def test_the_baseline_route_answers_the_classical_method_on_the_same_upload(servers, task):
    """What the demo page shows beside the GAN: bicubic, OpenCV Telea, grey or the input, as evaluate scores them."""
    base, session, _ = servers[task]
    pixels = picture(24, 20)
    files = upload(task, pixels)
    response = httpx.post(
        f"{base}{ROUTES[task]}/baseline", files={k: (f"{k}.png", v) for k, v in files.items()}
    )
    out = decoded(response)
    ready = httpx.get(f"{base}/readyz").json()
    assert ready["baseline_route"] == f"{ROUTES[task]}/baseline"
    titles = {"inpaint": "OpenCV Telea", "superres": "bicubic", "colorize": "grey", "translate": "identity"}
    assert ready["baseline"] == titles[task]
    if task == "superres":  # the evaluate stage's scored bicubic, rounded to 8 bits: byte for byte
        assert out.shape == (48, 40, 3) and np.array_equal(out, scored_bicubic(pixels, 2))
        assert np.abs(out.astype(int) - torch_bicubic(pixels, 2)).max() <= 1  # and torch's own, to rounding
    if task == "inpaint":  # Telea fills the hole and keeps every known pixel
        known = hole(24, 20) == 0
        assert np.array_equal(out[known], pixels[known]) and not np.array_equal(out, pixels)
        assert np.array_equal(out, scored_telea(pixels, ~known))  # the evaluate stage's method, bit for bit
        assert np.array_equal(out, opencv_telea(pixels, ~known))  # which is OpenCV's own, bit for bit
    if task == "colorize":  # grey: no chroma, the upload's luminance
        assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
        assert np.abs(out[..., 0] - luma(pixels)).max() <= 1
    if task == "translate":  # the identity: the upload itself, byte for byte
        assert np.array_equal(out, pixels)
    bad = httpx.post(f"{base}{ROUTES[task]}/baseline", files={"image": ("x.png", b"not an image")})
    assert bad.status_code == 422 and bad.json()["error"].startswith("image: not a PNG or JPEG")


@pytest.mark.parametrize("task", list(ROUTES))
def test_every_tasks_baseline_route_gives_the_bytes_the_evaluate_stage_scores(servers, task):
    """The server's baseline route (decode, the card's encoder, its baseline, PNG) against the evaluate
    stage's (the task object's baseline on the same model input), rounded to 8 bits as the PNG is."""
    base, session, _ = servers[task]
    info, files = session.info, upload(task, picture(24, 20))
    served = httpx.post(
        f"{base}{ROUTES[task]}/baseline", files={k: (f"{k}.png", v) for k, v in files.items()}
    )
    rgb, holes = restore.decode_upload(info, LIMITS, files["image"], files.get("mask"))
    model_input, _ = restore.model_input(info, rgb, holes)
    scored = scored_baseline(
        task, torch.from_numpy(model_input[None]), info.output_channels, max(info.scale, 2)
    )
    assert np.array_equal(decoded(served), to_uint8(scored.numpy())[0])


@pytest.mark.parametrize("task", ["superres", "inpaint"])
def test_the_baseline_of_a_grey_model_is_the_evaluate_stages_on_its_grey_pixels(servers, task):
    """A grey model's baseline view (the route's code, with a 1-channel output contract) on the same
    BT.601 luma the model sees: the scored bicubic byte for byte, OpenCV's own Telea bit for bit."""
    info = dataclasses.replace(servers[task][1].info, output_channels=1)
    pixels = picture(24, 20)
    files = upload(task, pixels)
    answer = restore.baseline_bytes(info, LIMITS, files["image"], files.get("mask"))
    out = np.asarray(Image.open(io.BytesIO(answer)))[..., None]
    grey = restore.model_pixels(pixels, 1)
    if task == "superres":
        assert out.shape == (48, 40, 1) and np.array_equal(out, scored_bicubic(grey, 2))
        assert np.abs(out.astype(int) - torch_bicubic(grey, 2)).max() <= 1
    else:
        holes = hole(24, 20) > 0
        assert np.array_equal(out, scored_telea(grey, holes)) and not np.array_equal(out, grey)
        assert np.array_equal(out, opencv_telea(grey, holes))


def test_the_baseline_view_runs_without_torch():
    """The serving image has ONNX Runtime and no torch: the shared bicubic and Telea must not need it."""
    probe = (
        "import sys; from ganops.serve import app, restore; from ganops import bicubic, telea; "
        "assert 'torch' not in sys.modules, 'the server imported torch'"
    )
    subprocess.run([sys.executable, "-c", probe], check=True)


def scored_bicubic(pixels: np.ndarray, factor: int) -> np.ndarray:
    """What the evaluate stage scores (tasks/restoration.py's baseline, a torch wrapper of the card's)
    for these (H, W, C) uint8 pixels, as 8-bit pixels."""
    low = torch.from_numpy(restore.to_unit(pixels))[None]
    return to_uint8(scored_baseline("superres", low, pixels.shape[2], factor).numpy())[0]


def scored_baseline(task: str, model_input: torch.Tensor, channels: int, scale: int = 2) -> torch.Tensor:
    """The evaluate stage's baseline of ``task`` on a model input, through the task object it scores with."""
    from ganops.config import parse_params
    from ganops.runtime import Stream, stream
    from ganops.tasks import build_task

    colour = {"source": "cifar10"}  # colorize refuses a grey source; no data is read here
    params = parse_params({"task": task, "data": colour, "restore": {"superres": {"factor": scale}}})
    built = build_task(params, torch.device("cpu"), stream(0, Stream.LATENT_NOISE))
    return built.baseline(model_input, channels)


def torch_bicubic(pixels: np.ndarray, factor: int) -> np.ndarray:
    """torch's own bicubic (a = -0.75) of the same pixels, an independent reference."""
    high = torch.nn.functional.interpolate(
        torch.from_numpy(restore.to_unit(pixels))[None],
        scale_factor=factor,
        mode="bicubic",
        align_corners=False,
    )
    return to_uint8(high.clamp(-1, 1).numpy())[0]


def scored_telea(pixels: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """The evaluate stage's Telea (tasks/restoration.py's baseline) on these (H, W, C) uint8 pixels, as 8-bit pixels."""
    from ganops.cards import card

    image = torch.from_numpy(restore.to_unit(pixels))[None]
    mask = torch.from_numpy(holes.astype(np.float32))[None, None]
    filled = scored_baseline("inpaint", card("inpaint").image_to_image.encode(image, mask), pixels.shape[2])
    return ((filled[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)


def opencv_telea(pixels: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """OpenCV's own Telea called here as its documentation shows: a colour image in and out in BGR."""
    import cv2

    from ganops.telea import RADIUS

    mask = holes.astype(np.uint8) * 255
    if pixels.shape[2] == 3:
        bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
        return cv2.cvtColor(cv2.inpaint(bgr, mask, RADIUS, cv2.INPAINT_TELEA), cv2.COLOR_BGR2RGB)
    return cv2.inpaint(np.ascontiguousarray(pixels[..., 0]), mask, RADIUS, cv2.INPAINT_TELEA)[..., None]


@pytest.mark.parametrize("task", list(ROUTES))
@pytest.mark.parametrize("height,width", [(37, 20), (29, 1), (1, 7), (48, 48)])
def test_any_size_up_to_the_pixel_limit_and_not_one_more(servers, task, height, width):
    base = servers[task][0]
    scale = 2 if task == "superres" else 1
    out = decoded(post(base, task, upload(task, picture(height, width))))
    assert out.shape[:2] == (height * scale, width * scale)
    over = post(base, task, upload(task, picture(1, 48 * 48 + 1)))
    assert over.status_code == 422
    assert over.json()["error"].startswith("image: 2305x1 = 2,305 pixels is over the limit of 2,304")


def test_an_empty_mask_returns_the_input_and_any_non_zero_pixel_is_a_hole(servers):
    base = servers["inpaint"][0]
    pixels = picture(13, 17)
    out = decoded(post(base, "inpaint", upload("inpaint", pixels, mask=np.zeros((13, 17), np.uint8))))
    assert np.array_equal(out, pixels)
    faint = np.zeros((13, 17, 4), np.uint8)  # RGBA: a transparent pixel is no hole, a faint one is
    faint[2, 3] = (1, 0, 0, 255)
    faint[5, 5] = (255, 255, 255, 0)
    plan = restore.prepare(servers["inpaint"][1].info, LIMITS, png(pixels), png(faint))
    holes = plan.batches[0][0, -1, :13, :17]
    assert holes[2, 3] == 1 and holes.sum() == 1


def test_a_colour_upload_is_reduced_to_its_luminance(servers):
    info = servers["colorize"][1].info
    pixels = picture(8, 12)
    plan = restore.prepare(info, LIMITS, png(pixels))
    rgb = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 127.5 - 1  # as training maps them
    assert np.allclose(plan.batches[0][0, :, :8, :12], colour.luminance(rgb)[0].numpy(), atol=1e-6)


def bomb() -> bytes:
    """A PNG of a few bytes whose header claims 12000 x 12000 pixels."""
    data = bytearray(png(np.zeros((1, 1, 3), np.uint8)))
    data[16:24] = (12_000).to_bytes(4, "big") * 2  # IHDR width and height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


BAD_UPLOADS = {
    "not an image": ({"image": b"hello, not a picture"}, 422, "image: not a PNG or JPEG file"),
    "truncated": ({"image": png(picture(40, 40))[:600]}, 422, "image: cannot be decoded"),
    "decompression bomb": ({"image": bomb()}, 422, "image: 12000x12000 = 144,000,000 pixels is over"),
    "too many pixels": ({"image": png(picture(49, 48))}, 422, "image: 48x49 = 2,352 pixels is over"),
    "mask of another size": (
        {"image": png(picture(10, 10)), "mask": png(hole(10, 11))},
        422,
        "mask: 11x10 pixels, the image is 10x10",
    ),
    "missing mask": ({"image": png(picture(10, 10))}, 422, "mask: missing"),
    "missing image": ({"mask": png(hole(10, 10))}, 422, "image: missing"),
    "unknown field": ({"image": b"", "picture": b""}, 422, "picture: unknown field"),
    "body over the limit": ({"image": bytes(100_000)}, 413, "body: "),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_a_bad_upload_gets_a_4xx_naming_the_field_and_the_server_stays_ready(servers, case):
    base = servers["inpaint"][0]
    files, status, error = BAD_UPLOADS[case]
    response = post(base, "inpaint", files)
    assert response.status_code == status, response.text
    assert response.json()["error"].startswith(error), response.json()
    assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200


def test_bad_json_and_content_types_name_the_field(servers):
    base = servers["superres"][0]
    route = f"{base}/v1/upscale"
    multipart = "multipart/form-data; boundary=x"  # with a chunked body: no Content-Length to refuse early
    cases = [
        (httpx.post(route, json={"image": "***"}), 422, "image: not base64"),
        (httpx.post(route, json={"image": "AAAA", "mask": "AAAA"}), 422, "mask: Extra inputs"),
        (httpx.post(route, json={}), 422, "image: Field required"),
        (
            httpx.post(route, content=b"{", headers={"content-type": "application/json"}),
            422,
            "body: malformed",
        ),
        (
            httpx.post(route, content=png(picture(4, 4)), headers={"content-type": "image/png"}),
            415,
            "content-type",
        ),
        (httpx.post(route, data={"image": "text"}, files={"x": ("x", b"")}), 422, "image: a text field"),
        (httpx.post(route, content=b"--", headers={"content-type": "multipart/form-data"}), 400, "body: "),
        (
            httpx.post(route, content=iter([bytes(70_000)]), headers={"content-type": multipart}),
            413,
            "body: ",
        ),
    ]
    for response, status, error in cases:
        assert (response.status_code, response.json()["error"][: len(error)]) == (status, error), (
            response.text
        )
    assert httpx.get(f"{base}/readyz").status_code == 200


def test_each_model_gets_only_its_route_and_the_docs_list_the_upload_fields(servers, tmp_path):
    base = servers["inpaint"][0]
    assert httpx.post(f"{base}/v1/upscale", json={}).status_code == 404
    assert httpx.post(f"{base}/v1/generate", json={"n": 1, "seed": 0}).status_code == 404
    paths = httpx.get(f"{base}/openapi.json").json()["paths"]
    assert [p for p in paths if p.startswith("/v1/")] == ["/v1/inpaint", "/v1/inpaint/baseline"]
    body = paths["/v1/inpaint"]["post"]["requestBody"]["content"]
    form = body["multipart/form-data"]["schema"]
    assert form["required"] == ["image", "mask"] and form["properties"]["mask"]["format"] == "binary"
    assert set(body["application/json"]["schema"]["properties"]) == {"image", "mask"}
    ready = httpx.get(f"{base}/readyz").json()
    assert (ready["task"], ready["route"], ready["max_pixels"]) == ("inpaint", "/v1/inpaint", 48 * 48)

    sampler = create_app(GeneratorSession(resolve(str(export_tiny(tmp_path).onnx)), "cpu", threads=1))
    sampler_paths = [p for p in sampler.openapi()["paths"] if p.startswith("/v1/")]
    assert sampler_paths == ["/v1/generate", "/v1/interpolate"]


def test_metrics_count_each_restoration_route(servers):
    base = servers["colorize"][0]
    decoded(post(base, "colorize", upload("colorize", picture(6, 6))))
    assert post(base, "colorize", {"image": b"nope"}).status_code == 422
    text = httpx.get(f"{base}/metrics").text
    assert 'ganops_requests_total{route="/v1/colorize",status="200"}' in text
    assert 'ganops_errors_total{kind="client",route="/v1/colorize"}' in text


def test_same_size_requests_share_a_model_run_and_other_sizes_wait():
    runs = []

    def model(rows: np.ndarray) -> np.ndarray:
        runs.append(rows.shape)
        return rows * 2

    async def scenario():
        batcher = MicroBatcher(model, max_batch=8, max_delay_ms=50)
        batcher.start()
        small, large = np.ones((1, 3, 4, 4), np.float32), np.ones((1, 3, 8, 4), np.float32)
        out = await asyncio.gather(*(batcher.submit(x) for x in (small, large, small * 3)))
        await batcher.stop()
        return out

    out = asyncio.run(scenario())
    assert runs == [(2, 3, 4, 4), (1, 3, 8, 4)]
    assert [float(o.max()) for o in out] == [2.0, 2.0, 6.0]


def test_tiled_superres_matches_the_untiled_output_away_from_tile_borders(servers):
    session = servers["superres"][1]
    data = png(picture(70, 53, seed=3))

    def output(limits: RestoreLimits) -> tuple[restore.Plan, np.ndarray]:
        plan = restore.prepare(session.info, limits, data)
        return plan, restore.assemble(plan, [session.run(b) for b in plan.batches])

    _, whole = output(RestoreLimits(tile_size=4096))
    # Narrow overlap: the seams show, but 8 output pixels (4 input) from every tile edge it agrees.
    plan, tiled = output(RestoreLimits(tile_size=16, tile_overlap=4))
    assert len(plan.tiles) > 20
    far = _distance_from_tile_edges(plan) >= 8
    assert np.abs(tiled - whole).max(axis=0)[far].max() <= PARITY_TOLERANCE
    # A wide overlap (half the tile): within the parity tolerance everywhere.
    plan, tiled = output(RestoreLimits(tile_size=32, tile_overlap=16))
    assert len(plan.tiles) > 4 and np.abs(tiled - whole).max() <= PARITY_TOLERANCE


def _distance_from_tile_edges(plan: restore.Plan) -> np.ndarray:
    """Each output pixel's distance (output pixels) from the nearest tile edge inside the image."""
    (height, width), s = plan.size, plan.scale
    th, tw = (side // s for side in plan.tiles[0].weight.shape)
    rows = {e * s for t in plan.tiles for e in (t.y, t.y + th) if 0 < e < plan.padded[0]}
    cols = {e * s for t in plan.tiles for e in (t.x, t.x + tw) if 0 < e < plan.padded[1]}
    y, x = np.mgrid[: height * s, : width * s] + 0.5
    near = [np.abs(y - e) for e in rows] + [np.abs(x - e) for e in cols]
    return np.min(near, axis=0)


@pytest.mark.parametrize("task", ["superres", "inpaint"])
def test_the_cli_writes_the_servers_png_bytes(servers, models, task, tmp_path):
    base = servers[task][0]
    folder, masks = tmp_path / "in", tmp_path / "masks"
    folder.mkdir()
    masks.mkdir()
    served = {}
    for name, (height, width) in {"a.png": (37, 44), "b.jpg": (9, 30)}.items():  # a is tiled
        pixels = picture(height, width, seed=len(name) + height)
        files = upload(task, pixels)
        if name.endswith(".jpg"):  # a photo; its mask stays a lossless PNG of the same stem
            files["image"] = png(pixels, "JPEG")
        (folder / name).write_bytes(files["image"])
        stem = name.split(".")[0]
        if task == "inpaint":
            (masks / f"{stem}.png").write_bytes(files["mask"])
        served[f"{stem}.png"] = post(base, task, files).content
    limits = ["--max-pixels", "2304", "--tile-size", "16", "--tile-overlap", "8", "--provider", "cpu"]
    mask = ["--mask", str(masks)] if task == "inpaint" else []
    out = tmp_path / "out"
    many = CliRunner().invoke(
        cli, ["restore", str(models[task]), str(folder), *mask, "-o", str(out), *limits]
    )
    assert many.exit_code == 0, many.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == served

    mask = ["--mask", str(masks / "a.png")] if task == "inpaint" else []
    one = CliRunner().invoke(cli, ["restore", str(models[task]), str(folder / "a.png"), *mask, *limits])
    assert one.exit_code == 0, one.output
    assert (folder / f"a-{task}.png").read_bytes() == served["a.png"]  # NAME-TASK.png beside it

    if task == "inpaint":  # two masks for one image: which one was meant is not guessed
        (masks / "a.jpg").write_bytes(png(hole(37, 44), "JPEG"))
        both = CliRunner().invoke(
            cli, ["restore", str(models[task]), str(folder), "--mask", str(masks), *limits]
        )
        assert both.exit_code == 2 and "a.jpg and a.png are both masks of a; keep one" in both.output


def test_the_cli_names_the_file_and_the_fix(models, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    result = CliRunner().invoke(cli, ["restore", str(models["colorize"]), str(broken), "--provider", "cpu"])
    assert result.exit_code == 2
    assert f"error: {broken}: image: not a PNG or JPEG file" in result.output
    result = CliRunner().invoke(cli, ["restore", str(models["inpaint"]), str(broken), "--provider", "cpu"])
    assert result.exit_code == 2 and "--mask: the inpaint model needs the mask" in result.output
    result = CliRunner().invoke(cli, ["sample", str(models["colorize"]), "-o", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "a colorize model samples nothing; use `ganops restore" in result.output
    overlap = ["--tile-size", "16", "--tile-overlap", "16"]
    result = CliRunner().invoke(cli, ["restore", str(models["superres"]), str(broken), *overlap])
    assert (
        result.exit_code == 2
        and "--tile-overlap 16: must be at least 0 and below --tile-size 16" in result.output
    )


def _multipart(files: dict[str, bytes]) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/", files={k: (f"{k}.png", v) for k, v in files.items()})
    return request.read(), request.headers["content-type"]


async def _slow_and_leaving_uploads(host: str, port: int, route: str, files: dict[str, bytes]) -> bytes:
    """One client trickles a whole upload in; another sends half of one and leaves."""
    body, kind = _multipart(files)
    head = f"POST {route} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"

    async def leave() -> None:
        _, writer = await asyncio.open_connection(host, port)
        writer.write(f"{head}\r\n".encode() + body[: len(body) // 2])
        await writer.drain()
        writer.close()

    async def trickle() -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"{head}Connection: close\r\n\r\n".encode())
        for start in range(0, len(body), 256):
            writer.write(body[start : start + 256])
            await writer.drain()
            await asyncio.sleep(0.005)
        answer = await reader.read()
        writer.close()
        return answer

    _, answer = await asyncio.gather(leave(), trickle())
    return answer


def test_slow_and_disconnecting_uploads_leave_the_server_healthy(servers):
    base = servers["inpaint"][0]
    host, port = base.removeprefix("http://").split(":")
    files = upload("inpaint", picture(30, 30))
    answer = asyncio.run(_slow_and_leaving_uploads(host, int(port), "/v1/inpaint", files))
    assert (
        answer.startswith(b"HTTP/1.1 200")
        and answer.split(b"\r\n\r\n", 1)[1] == post(base, "inpaint", files).content
    )
    assert httpx.get(f"{base}/readyz").status_code == 200
    assert 'kind="server"' not in httpx.get(f"{base}/metrics").text


def test_the_contract_reads_the_same_from_the_onnx_file_without_a_session(servers, models):
    import onnx

    from ganops.serve.contract import restoration_info

    for task, onnx_path in models.items():
        meta = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
        assert restoration_info(meta, "float32", str(onnx_path)) == servers[task][1].info


def test_a_registered_restoration_champion_is_served_with_its_route(models, tmp_path, monkeypatch):
    """models:/ganops-<task>@champion resolves and verifies like the generator's URI, and mounts the task."""
    import json

    import mlflow
    import onnx
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(
        mlflow.tracking._tracking_service.utils, "_tracking_uri", uri
    )  # an earlier test may have set one
    monkeypatch.chdir(tmp_path)
    onnx_path = models["inpaint"]
    client = MlflowClient()
    # An explicit experiment: an earlier test may have left another database's experiment active.
    with mlflow.start_run(experiment_id=client.create_experiment("serve-restoration")):
        mlflow.onnx.log_model(
            onnx.load_model(str(onnx_path)),
            name="generator",
            registered_model_name="ganops-inpaint",
            save_as_external_data=False,
            pip_requirements=["onnxruntime"],
        )
    sha256 = json.loads(onnx_path.with_name(onnx_path.name + ".json").read_text())["sha256"]
    client.set_model_version_tag("ganops-inpaint", "1", "onnx_sha256", sha256)
    client.set_registered_model_alias("ganops-inpaint", "champion", "1")

    model = resolve("models:/ganops-inpaint@champion")
    assert model.sha256 == sha256 and "ganops-inpaint v1" in model.detail
    app = create_app(GeneratorSession(model, "cpu", threads=1), SETTINGS)
    assert [p for p in app.openapi()["paths"] if p.startswith("/v1/")] == [
        "/v1/inpaint",
        "/v1/inpaint/baseline",
    ]


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_fuzzed_upload_causes_a_server_error(servers, mode):
    """Schemathesis, from the route's documented request bodies (multipart and JSON), as for samplers."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.generation import GenerationMode

    base = servers["inpaint"][0]
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json").include(path="/v1/inpaint")
    seen: dict[int, int] = {}

    @given(case=schema.as_strategy(generation_mode=GenerationMode(mode)))
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def check(case):
        response = case.call(base_url=base, timeout=30)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, f"{case.media_type} {case.body!r:.200} -> {response.status_code}"

    check()
    assert sum(seen.values()) >= 30 and any(400 <= code < 500 for code in seen), seen


# What the model was trained on, and uploads that do not fit it: the Fashion-MNIST inpaint champion
# used to answer a colour photo in grey with nothing saying why.
FASHION = {
    "source": "fashion-mnist",
    "origin": "/usr/share/datasets/fashion-mnist",
    "image_size": 16,
    "channels": 1,
}
GREY_MODEL = (
    "this model was trained on one-channel grey images (fashion-mnist): the colour upload was converted"
)


@pytest.fixture(scope="module")
def grey(tmp_path_factory):
    """A grey inpaint model exported beside prepare's manifest, as the pipeline exports one: (URL, ONNX path)."""
    root = tmp_path_factory.mktemp("grey")
    write_json(Layout(root).manifest, {**FASHION, "splits": {}})
    onnx = export_tiny_restoration(root, "inpaint", channels=1).onnx
    with uvicorn_thread(create_app(GeneratorSession(resolve(str(onnx)), "cpu", threads=1), SETTINGS)) as base:
        yield base, onnx


def as_grey(pixels: np.ndarray) -> np.ndarray:
    """An RGB picture whose three channels are equal: what a grey photo decodes to."""
    return np.repeat(restore.model_pixels(pixels, 1), 3, axis=2)


def test_readyz_says_what_the_model_was_trained_on_and_unknown_for_an_older_export(grey, servers):
    trained = httpx.get(f"{grey[0]}/readyz").json()["trained_on"]
    summary = "fashion-mnist (/usr/share/datasets/fashion-mnist), grey, 16 px images"
    assert trained == {"summary": summary, **FASHION, "crop": "resize"}
    older = httpx.get(f"{servers['superres'][0]}/readyz").json()  # exported without a manifest beside it
    assert older["status"] == "ready" and older["trained_on"] == {"summary": UNKNOWN}
    assert UNKNOWN.startswith("unknown: ")
    photos = TrainedOn(
        source="imagefolder",
        origin="data/raw/photos",
        channels=3,
        image_size=96,
        crop="random_patches",
        patches_per_image=16,
    )
    assert photos.summary() == "imagefolder (data/raw/photos), RGB, 96 px random patches (16 per image)"


def test_a_colour_upload_to_a_grey_model_is_answered_with_a_warning_and_a_grey_one_without(grey):
    base = grey[0]
    pixels = picture(24, 20)
    coloured = post(base, "inpaint", upload("inpaint", pixels))
    assert decoded(coloured).ndim == 2  # a one-channel PNG: the answer is grey
    warning = coloured.headers["x-ganops-warning"]
    assert warning.startswith(GREY_MODEL) and "data.source=imagefolder" in warning  # the cause and the fix
    plain = post(base, "inpaint", upload("inpaint", as_grey(pixels)))
    assert decoded(plain).ndim == 2 and "x-ganops-warning" not in plain.headers


@pytest.mark.parametrize("task", list(ROUTES))
def test_a_grey_upload_to_a_colour_model_is_warned_of_unless_grey_is_its_input(servers, task):
    """Colorize takes any upload's luminance and a translate model's input domain may be grey (edges):
    neither is warned of. A colour upload to a colour model never is."""
    base = servers[task][0]
    pixels = picture(24, 20)
    grey_upload = post(base, task, upload(task, as_grey(pixels)))
    assert grey_upload.status_code == 200
    warning = grey_upload.headers.get("x-ganops-warning")
    if task in ("inpaint", "superres"):
        assert warning.startswith("this model was trained on colour images: the grey upload was given")
        assert "send the colour original" in warning
    else:
        assert warning is None
    assert "x-ganops-warning" not in post(base, task, upload(task, pixels)).headers


def test_the_cli_prints_the_warning_once_naming_the_files(grey, tmp_path):
    folder, masks = tmp_path / "in", tmp_path / "masks"
    folder.mkdir()
    masks.mkdir()
    for i in range(5):  # four colour photos and one grey
        pixels = picture(12, 16, seed=i)
        (folder / f"{i}.png").write_bytes(png(as_grey(pixels) if i == 4 else pixels))
        (masks / f"{i}.png").write_bytes(png(hole(12, 16)))
    result = CliRunner().invoke(
        cli, ["restore", str(grey[1]), str(folder), "--mask", str(masks), "--provider", "cpu"]
    )
    assert result.exit_code == 0, result.output
    named = ", ".join(str(folder / f"{i}.png") for i in range(3))
    assert f"warning: {named} and 1 more: {GREY_MODEL}" in result.stderr
    assert result.stderr.count("warning:") == 1 and "4.png" not in result.stderr
    assert "wrote 5 images" in result.stdout
