"""The demo page in real headless Chromium (Debian's chromium + chromedriver, driven by Selenium)."""

import io
import shutil

import numpy as np
import pytest
from PIL import Image

from ganops.serve.app import ServeSettings, create_app
from ganops.serve.session import GeneratorSession
from ganops.serve.source import resolve
from serve_helpers import export_tiny, uvicorn_thread

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver (`make browser`)"
)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    layout = export_tiny(tmp_path_factory.mktemp("serve-browser"))
    session = GeneratorSession(resolve(str(layout.onnx)), "cpu")
    with uvicorn_thread(create_app(session, ServeSettings(max_n=32, max_steps=32))) as url:
        yield url


@pytest.fixture()
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1000,800",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _wait(driver, script: str, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script))


def _element_pixels(driver, element) -> np.ndarray:
    """The element's region of a real screenshot, as gray pixels."""
    shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("L")
    scale = shot.width / driver.execute_script("return window.innerWidth")
    r = element.rect
    box = tuple(int(v * scale) for v in (r["x"], r["y"], r["x"] + r["width"], r["y"] + r["height"]))
    return np.asarray(shot.crop(box), dtype=np.float32)


def test_gallery_new_seeds_and_interpolation_slider(base, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(f"{base}/")
    _wait(browser, "return document.body.dataset.ready === '1'")
    assert browser.find_element(By.ID, "status").text == ""
    images = browser.find_elements(By.CSS_SELECTOR, "#gallery img")
    assert len(images) == 32
    assert all(browser.execute_script("return arguments[0].naturalWidth", img) == 16 for img in images)

    gallery = browser.find_element(By.ID, "gallery")
    browser.save_screenshot(str(tmp_path / "demo.png"))
    pixels = _element_pixels(browser, gallery)
    assert pixels.std() > 10, "the gallery looks blank in the screenshot"
    dark = (pixels < 250).mean()
    assert dark > 0.3, f"only {dark:.0%} of the gallery region is drawn"

    first = images[0].get_attribute("src")
    browser.find_element(By.ID, "new-seeds").click()
    _wait(browser, f"return document.querySelector('#gallery img').src !== {first!r}")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#gallery img")) == 32

    morph = browser.find_element(By.ID, "morph")
    _wait(browser, "return document.getElementById('morph').src.startsWith('data:image/png')")
    start = morph.get_attribute("src")
    browser.execute_script(
        "const s = document.getElementById('slider'); s.value = 15; s.dispatchEvent(new Event('input'));"
    )
    assert morph.get_attribute("src") != start
    assert _element_pixels(browser, morph).std() > 10
    assert browser.find_element(By.ID, "status").text == ""
