"""The demo page in real headless Chromium (Debian's chromium + chromedriver, driven by Selenium)."""

import pytest

from browser import chromium, element_pixels, needs_chromium, wait
from ganops.serve.app import ServeSettings, create_app
from ganops.serve.session import GeneratorSession
from ganops.serve.source import resolve
from serve_helpers import export_tiny, uvicorn_thread

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    layout = export_tiny(tmp_path_factory.mktemp("serve-browser"))
    session = GeneratorSession(resolve(str(layout.onnx)), "cpu")
    with uvicorn_thread(create_app(session, ServeSettings(max_n=32, max_steps=32))) as url:
        yield url


@pytest.fixture()
def browser(tmp_path):
    with chromium(tmp_path / "profile") as driver:
        yield driver


def test_gallery_new_seeds_and_interpolation_slider(base, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(f"{base}/")
    wait(browser, "return document.body.dataset.ready === '1'")
    assert browser.find_element(By.ID, "status").text == ""
    images = browser.find_elements(By.CSS_SELECTOR, "#gallery img")
    assert len(images) == 32
    assert all(browser.execute_script("return arguments[0].naturalWidth", img) == 16 for img in images)

    gallery = browser.find_element(By.ID, "gallery")
    browser.save_screenshot(str(tmp_path / "demo.png"))
    pixels = element_pixels(browser, gallery)
    assert pixels.std() > 10, "the gallery looks blank in the screenshot"
    dark = (pixels < 250).mean()
    assert dark > 0.3, f"only {dark:.0%} of the gallery region is drawn"

    first = images[0].get_attribute("src")
    browser.find_element(By.ID, "new-seeds").click()
    wait(browser, f"return document.querySelector('#gallery img').src !== {first!r}")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#gallery img")) == 32

    morph = browser.find_element(By.ID, "morph")
    wait(browser, "return document.getElementById('morph').src.startsWith('data:image/png')")
    start = morph.get_attribute("src")
    browser.execute_script(
        "const s = document.getElementById('slider'); s.value = 15; s.dispatchEvent(new Event('input'));"
    )
    assert morph.get_attribute("src") != start
    assert element_pixels(browser, morph).std() > 10
    assert browser.find_element(By.ID, "status").text == ""


def test_api_docs_render_offline(base, browser):
    """/docs is Swagger UI from the package's own files: it renders with every CDN unreachable."""
    browser.get(f"{base}/docs")
    wait(browser, "return document.body.innerText.includes('/v1/generate')")
    assert "cdn" not in browser.page_source.split("<body")[0].lower()
