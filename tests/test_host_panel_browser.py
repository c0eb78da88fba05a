"""The control panel in a real headless browser (Debian's Chromium driven by Selenium).

Two people stand in front of the simulated gimbal; the test clicks the one
that is not followed, checks the lock moved to them (API and panel), and
saves a screenshot. Skips, saying why, where Chromium or its driver is missing
(`.ci/run` installs both with apt).
"""

import json
import os
import shutil
import urllib.request

import pytest

from tests.served_sim import TWO_STILL_PEOPLE, ServedSim

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
SCREENSHOT_DIR = os.environ.get("OPENSTEADY_SCREENSHOTS")  # keep the screenshot here when set

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="no Chromium + chromedriver on this machine (Debian: apt-get install -y chromium chromium-driver)")


def _status(url):
    with urllib.request.urlopen(url + "api/status", timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1200,800", "--user-data-dir=%s" % (tmp_path / "profile")):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_click_a_person_to_lock_on(tmp_path, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    scenario = tmp_path / "two-still-people.toml"
    scenario.write_text(TWO_STILL_PEOPLE)
    sim = ServedSim(str(scenario), web=True)
    try:
        sim.step(30)
        first = _status(sim.services.web.url)
        assert first["target"]["locked"] and len(first["faces"]) == 2, first
        sim.run_in_background()

        browser.get(sim.services.web.url)
        WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "s-target").text.startswith("#"))
        img = browser.find_element(By.ID, "view")
        WebDriverWait(browser, 60).until(lambda d: d.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", img))

        # The person not followed: the face farthest from the current target.
        now = _status(sim.services.web.url)
        old_id, tx = now["target"]["track_id"], now["target"]["x"]
        other = max(now["faces"], key=lambda f: abs(f["x"] + f["w"] / 2 - tx))
        fx, fy = other["x"] + other["w"] / 2, other["y"] + other["h"] / 2
        w, h = img.size["width"], img.size["height"]
        ActionChains(browser).move_to_element_with_offset(img, int((fx - 0.5) * w), int((fy - 0.5) * h)).click().perform()

        WebDriverWait(browser, 60).until(lambda d: _status(sim.services.web.url)["target"]["track_id"] != old_id)
        after = _status(sim.services.web.url)
        assert after["target"]["locked"]
        WebDriverWait(browser, 60).until(
            lambda d: d.find_element(By.ID, "s-target").text.startswith("#%d " % after["target"]["track_id"]))
        WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "message").text == "lock sent")

        # The panel's buttons act too: pause shows up as the mode.
        browser.find_element(By.ID, "pause").click()
        WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "s-mode").text == "paused")

        # The fill light: a button -> the API -> the loop -> MSG_LIGHT -> the firmware's PWM duty
        browser.find_element(By.ID, "light-2").click()
        WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "s-light").text == "level 2")
        WebDriverWait(browser, 60).until(lambda d: sim.rig.gimbal.hal.light_duty_u16 == 32768)

        shot = os.path.join(SCREENSHOT_DIR or str(tmp_path), "panel.png")
        assert browser.save_screenshot(shot) and os.path.getsize(shot) > 10000
    finally:
        sim.close()
