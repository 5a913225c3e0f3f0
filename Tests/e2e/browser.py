"""Headless Chromium through selenium, as the page's test and its benchmark open it: Debian's
``chromium`` and ``chromium-driver``, ``--headless=new --no-sandbox``, a viewport of exactly the
given size, the browser console kept for reading."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM_BIN = Path("/usr/bin/chromium")
CHROMEDRIVER_BIN = Path("/usr/bin/chromedriver")


def open_chromium(viewport: tuple[int, int], script_timeout_s: float,
                  chromium: Path = CHROMIUM_BIN, chromedriver: Path = CHROMEDRIVER_BIN):
    """A selenium driver; the caller quits it. Raises ImportError without selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", "--no-first-run", "--no-default-browser-check",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--window-size={viewport[0]},{viewport[1]}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(chromedriver), log_output=os.devnull)
    browser = webdriver.Chrome(service=service, options=options)
    try:
        # The viewport itself is this size, whatever the headless window's decorations take.
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": viewport[0], "height": viewport[1], "deviceScaleFactor": 1, "mobile": False})
        browser.set_script_timeout(script_timeout_s)
    except Exception:
        browser.quit()
        raise
    return browser
