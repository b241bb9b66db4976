"""The studio in a real headless browser (Debian's chromium + chromium-driver, driven by Selenium).

Before any motion the mannequin stands in its rest pose. Types a prompt, clicks Generate, waits for
playback, takes two screenshots at different times and checks that the 3D view is not blank and that the
character moved. Screenshots are kept in tests/artifacts/.
"""

import io
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs a browser: apt-get install chromium chromium-driver (.ci/run installs them)",
)


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800",
                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


def _wait(driver, script: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {script}; browser log: {driver.get_log('browser')}")


def _canvas_pixels(driver) -> np.ndarray:
    from PIL import Image

    canvas = driver.find_element("css selector", "#viewport canvas")
    return np.asarray(Image.open(io.BytesIO(canvas.screenshot_as_png)).convert("RGB"), dtype=np.int16)


def _skin_pixels(shot: np.ndarray) -> float:
    """Share of the view in the mannequin's warm skin colours (background, floor and grid are blue-grey)."""
    return float(((shot[..., 0] - shot[..., 2] > 30) & (shot[..., 0] > 120)).mean())


def test_studio_shows_the_mannequin_standing_before_any_motion(live, browser):
    browser.get(live.url + "/")
    _wait(browser, "return window.studio && window.studio.ready")
    time.sleep(0.5)  # a few frames drawn
    assert browser.execute_script("return window.studio.motion") is None
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "studio_idle.png"))
    assert _skin_pixels(_canvas_pixels(browser)) > 0.003, "no mannequin in view before the first motion"
    head = browser.execute_script("return window.studio.mannequin.head.position.y")
    feet = browser.execute_script("const m = window.studio.mannequin; return m.bones.map((b) => b.position.y)")
    assert 1.4 < head < 1.9 and min(feet) < 0.1  # standing on the floor, not lying on it or floating


def test_an_empty_prompt_box_adds_the_example_to_the_timeline(live, browser):
    browser.get(live.url + "/")
    _wait(browser, "return window.studio && window.studio.ready")
    if not browser.execute_script("return window.studio.model.timelines"):
        pytest.skip("this library has no timelines yet (MotionPipeline.compose)")
    prompt = browser.find_element("id", "prompt")
    prompt.clear()
    browser.find_element("id", "add-segment").click()
    example = prompt.get_attribute("placeholder")
    assert example and [li.find_element("css selector", "span").text
                        for li in browser.find_elements("css selector", "#segments li")] == [example]  # fmt: skip
    assert not browser.find_element("id", "status").text  # no complaint


def test_studio_generates_and_plays_a_motion(live, browser):
    browser.get(live.url + "/")
    _wait(browser, "return window.studio && window.studio.ready")
    prompt = browser.find_element("id", "prompt")
    prompt.clear()
    prompt.send_keys("a person walks forward")
    browser.find_element("id", "generate").click()
    _wait(browser, "return window.studio.motion && window.studio.playing && window.studio.frame > 5")

    ARTIFACTS.mkdir(exist_ok=True)
    first_frame = browser.execute_script("return window.studio.frame")
    first = _canvas_pixels(browser)
    browser.save_screenshot(str(ARTIFACTS / "studio_1.png"))
    time.sleep(1.0)
    second_frame = browser.execute_script("return window.studio.frame")
    second = _canvas_pixels(browser)
    browser.save_screenshot(str(ARTIFACTS / "studio_2.png"))

    # Not blank: the canvas holds more than the background (a character, a grid, a shadow).
    background = np.array([0xEE, 0xF1, 0xF5])
    for shot in (first, second):
        assert shot.std() > 10, "the 3D view is blank"
        assert (np.abs(shot - background).sum(axis=2) > 60).mean() > 0.01, "nothing but background in view"
    # Moved: playback advanced and the picture changed where the character is.
    assert second_frame != first_frame
    changed = (np.abs(second - first).sum(axis=2) > 40).mean()
    assert changed > 0.002, f"only {changed:.4%} of the pixels changed between the screenshots"

    # The page offers the motion's files, and the history lists it.
    formats = {a.get_attribute("data-format") for a in browser.find_elements("css selector", "#download-links a")}
    assert {"bvh", "npy", "mp4"} <= formats
    assert len(browser.find_elements("css selector", "#history li")) == 1
    assert browser.find_element("id", "status").text.startswith("Made ")


def test_studio_composes_a_timeline_of_prompts(live, browser):
    browser.get(live.url + "/")
    _wait(browser, "return window.studio && window.studio.ready")
    if not browser.execute_script("return window.studio.model.timelines"):
        pytest.skip("this library has no timelines yet (MotionPipeline.compose)")
    prompt, seconds = browser.find_element("id", "prompt"), browser.find_element("id", "seconds")
    for text, length in (("a person walks forward", "3"), ("a person bows", "2")):
        prompt.clear()
        prompt.send_keys(text)
        seconds.clear()
        seconds.send_keys(length)
        browser.find_element("id", "add-segment").click()
    assert len(browser.find_elements("css selector", "#segments li")) == 2
    browser.find_element("id", "generate").click()
    _wait(browser, "return window.studio.motion && window.studio.motion.complete && window.studio.frame > 5")
    labels = [span.text for span in browser.find_elements("css selector", "#segment-bar span")]
    assert labels == ["a person walks forward", "a person bows"]
    assert 130 <= browser.execute_script("return window.studio.motion.frames") <= 170  # 5 s at 30 fps
    browser.save_screenshot(str(ARTIFACTS / "studio_timeline.png"))


def test_api_docs_render_offline(live, browser):
    browser.get(live.url + "/docs")
    _wait(browser, "return document.querySelectorAll('.opblock').length >= 4")
    paths = {e.text for e in browser.find_elements("css selector", ".opblock-summary-path")}
    assert {"/v1/generate", "/v1/generate/stream", "/v1/model"} <= paths
    scripts = [e.get_attribute("src") for e in browser.find_elements("css selector", "script[src]")]
    assert scripts and all(src.startswith(live.url) for src in scripts)  # nothing from a CDN
