"""The restoration demo page in real headless Chromium: upload, a mask drawn with the mouse, input,
classical baseline and GAN output side by side, download, and the server's error shown on the page."""

import contextlib

import numpy as np
import pytest
from PIL import Image

from browser import chromium, element_pixels, needs_chromium, wait
from ganops.files import write_json
from ganops.serve.app import ServeSettings, create_app
from ganops.serve.contract import RestoreLimits
from ganops.serve.session import GeneratorSession
from ganops.serve.source import resolve
from ganops.stages import Layout
from serve_helpers import export_tiny_restoration, uvicorn_thread

pytestmark = needs_chromium
SETTINGS = ServeSettings(restore=RestoreLimits(max_pixels=48 * 48, tile_size=16, tile_overlap=8))


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    with contextlib.ExitStack() as stack:
        urls = {}
        for task in ("inpaint", "superres", "colorize", "translate"):
            onnx = export_tiny_restoration(tmp_path_factory.mktemp(task), task).onnx
            session = GeneratorSession(resolve(str(onnx)), "cpu", threads=1)
            urls[task] = stack.enter_context(uvicorn_thread(create_app(session, SETTINGS)))
        yield urls


@pytest.fixture()
def browser(tmp_path):
    with chromium(tmp_path / "profile") as driver:
        yield driver


def photo(path, height: int, width: int):
    y, x = np.mgrid[:height, :width]
    pixels = np.stack([x * 6 % 256, y * 8 % 256, (x + y) * 4 % 256], axis=-1).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def open_page(browser, base, image):
    from selenium.webdriver.common.by import By

    browser.get(f"{base}/")
    wait(browser, "return document.body.dataset.ready === '1'")
    browser.find_element(By.ID, "file").send_keys(str(image))
    wait(browser, "return document.body.dataset.loaded === '1'")


# Pixels of the input canvas, the mask canvas and the output image (drawn at its natural size).
PIXELS = """
const read = (source, w, h) => {
  const c = document.createElement('canvas'); c.width = w; c.height = h;
  const g = c.getContext('2d'); g.drawImage(source, 0, 0); return Array.from(g.getImageData(0, 0, w, h).data);
};
const input = document.getElementById('input'), out = document.getElementById('output');
const base = document.getElementById('baseline');
return [read(input, input.width, input.height), read(document.getElementById('mask'), input.width, input.height),
        read(out, out.naturalWidth, out.naturalHeight), read(base, base.naturalWidth, base.naturalHeight)];
"""


def test_inpaint_page_fills_the_hole_drawn_with_the_mouse(bases, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    open_page(browser, bases["inpaint"], photo(tmp_path / "photo.png", 32, 40))
    assert browser.find_element(By.ID, "title").text == "ganops inpaint"
    mask = browser.find_element(By.ID, "mask")
    ActionChains(browser).move_to_element_with_offset(mask, -60, -10).click_and_hold().move_by_offset(
        120, 20
    ).release().perform()
    browser.find_element(By.ID, "run").click()
    wait(browser, "return document.body.dataset.done === '1'")
    assert browser.find_element(By.ID, "status").text == ""
    browser.save_screenshot(str(tmp_path / "inpaint.png"))

    rgba_in, rgba_mask, rgba_out, rgba_base = (
        np.array(a).reshape(32, 40, 4) for a in browser.execute_script(PIXELS)
    )
    holes = rgba_mask[..., 3] > 0
    assert 20 < holes.sum() < 32 * 40 / 2, "the stroke did not reach the mask canvas"
    for shown in (rgba_out, rgba_base):  # the GAN and OpenCV's Telea, side by side
        changed = np.any(shown[..., :3] != rgba_in[..., :3], axis=-1)
        assert changed.any() and not (changed & ~holes).any(), "only the drawn hole may change"
    assert browser.find_element(By.ID, "baseline-name").text == "OpenCV Telea (classical)"

    link = browser.find_element(By.ID, "download")
    assert (
        link.get_attribute("href").startswith("blob:")
        and link.get_attribute("download") == "photo-inpaint.png"
    )
    assert element_pixels(browser, browser.find_element(By.ID, "output")).std() > 5


def test_superres_page_shows_the_upscaled_image_and_the_servers_errors(bases, browser, tmp_path):
    from selenium.webdriver.common.by import By

    open_page(browser, bases["superres"], photo(tmp_path / "small.png", 20, 30))
    assert not browser.find_element(By.ID, "mask").is_displayed()
    browser.find_element(By.ID, "run").click()
    wait(browser, "return document.body.dataset.done === '1'")
    size = browser.execute_script(
        "const o = document.getElementById('output'); return [o.naturalWidth, o.naturalHeight]"
    )
    assert size == [60, 40]

    browser.find_element(By.ID, "file").send_keys(str(photo(tmp_path / "large.png", 60, 60)))
    browser.find_element(By.ID, "run").click()
    wait(browser, "return document.getElementById('status').textContent !== ''")
    assert browser.find_element(By.ID, "status").text.startswith(
        "image: 60x60 = 3,600 pixels is over the limit"
    )


def run_unmasked(browser, base, image):
    """Upload ``image`` to a page without a mask editor, run it: RGBA of the input, output and baseline."""
    from selenium.webdriver.common.by import By

    open_page(browser, base, image)
    assert not browser.find_element(By.ID, "mask").is_displayed()
    browser.find_element(By.ID, "run").click()
    wait(browser, "return document.body.dataset.done === '1'")
    height, width = np.asarray(Image.open(image)).shape[:2]
    rgba_in, _, rgba_out, rgba_base = (
        np.array(a).reshape(height, width, 4) for a in browser.execute_script(PIXELS)
    )
    return rgba_in, rgba_out, rgba_base


def test_colorize_page_shows_grey_beside_the_colour_it_made(bases, browser, tmp_path):
    from selenium.webdriver.common.by import By

    rgba_in, rgba_out, rgba_base = run_unmasked(
        browser, bases["colorize"], photo(tmp_path / "colour.png", 24, 36)
    )
    assert browser.find_element(By.ID, "baseline-name").text == "grey (classical)"
    assert (rgba_base[..., 0] == rgba_base[..., 1]).all() and (rgba_base[..., 1] == rgba_base[..., 2]).all()
    weights = np.array([0.299, 0.587, 0.114])
    # The GAN's colours keep the upload's luminance, which is what the grey baseline shows.
    assert np.abs(rgba_out[..., :3] @ weights - rgba_base[..., 0]).mean() < 2.0
    assert browser.find_element(By.ID, "download").get_attribute("download") == "colour-colorize.png"


def test_translate_page_shows_the_input_the_identity_baseline_and_the_translation(bases, browser, tmp_path):
    from selenium.webdriver.common.by import By

    rgba_in, rgba_out, rgba_base = run_unmasked(
        browser, bases["translate"], photo(tmp_path / "edges.png", 20, 28)
    )
    assert browser.find_element(By.ID, "baseline-name").text == "identity (classical)"
    assert np.array_equal(rgba_base, rgba_in)  # without a GAN, the input is what a user has
    assert not np.array_equal(rgba_out, rgba_in)
    assert browser.find_element(By.ID, "title").text == "ganops translate"
    assert browser.find_element(By.ID, "download").get_attribute("download") == "edges-translate.png"


@pytest.fixture(scope="module")
def grey_base(tmp_path_factory):
    """A grey superres model exported beside a Fashion-MNIST manifest, served."""
    root = tmp_path_factory.mktemp("grey")
    manifest = {"source": "fashion-mnist", "origin": "/usr/share/datasets/fashion-mnist", "image_size": 16}
    write_json(Layout(root).manifest, {**manifest, "channels": 1})
    onnx = export_tiny_restoration(root, "superres", channels=1).onnx
    session = GeneratorSession(resolve(str(onnx)), "cpu", threads=1)
    with uvicorn_thread(create_app(session, SETTINGS)) as base:
        yield base


def test_the_page_says_what_the_model_learned_and_why_a_colour_photo_came_back_grey(
    grey_base, browser, tmp_path
):
    from selenium.webdriver.common.by import By

    open_page(browser, grey_base, photo(tmp_path / "colour.png", 20, 28))
    trained = browser.find_element(By.ID, "trained").text
    assert trained == "trained on fashion-mnist (/usr/share/datasets/fashion-mnist), grey, 16 px images"
    warning = browser.find_element(By.ID, "warning")
    assert not warning.is_displayed()  # nothing to say before an answer
    browser.find_element(By.ID, "run").click()
    wait(browser, "return document.body.dataset.done === '1'")
    assert warning.is_displayed()
    assert warning.text.startswith("this model was trained on one-channel grey images (fashion-mnist)")
    assert "data.source=imagefolder" in warning.text

    grey = tmp_path / "grey.png"
    Image.open(photo(tmp_path / "again.png", 20, 28)).convert("L").save(grey)
    browser.find_element(By.ID, "file").send_keys(str(grey))
    browser.find_element(By.ID, "run").click()
    wait(browser, "return document.body.dataset.done === '2'")
    assert not warning.is_displayed()  # a grey photo fits: the last answer's warning is gone
