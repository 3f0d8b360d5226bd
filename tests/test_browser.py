"""Open the built book in headless Chromium: images load, no console errors, Colab link right."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "01_numpy_from_scratch"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage", "--disable-sync"]

pytestmark = [pytest.mark.browser, pytest.mark.book]


@pytest.fixture(scope="module")
def server(built_book):
    handler = functools.partial(_QuietHandler, directory=str(built_book))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver_path, (
        "the browser test needs Debian's chromium and chromium-driver: `make setup-browser` "
        "(apt-get install -y chromium chromium-driver)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}", "--window-size=1280,2000"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def open_page(browser, url, lands_on=None):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")  # drop messages of the previous page
    browser.get(url)
    wait = WebDriverWait(browser, 30)
    if lands_on:  # a redirect page: wait until the browser has followed it
        wait.until(lambda d: d.current_url.endswith(lands_on))
    wait.until(lambda d: d.execute_script("return document.readyState === 'complete' && !!document.body"))
    # scroll through the page so that every image is requested, then wait until all have settled
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight);")
    browser.execute_async_script(
        """const done = arguments[arguments.length - 1];
        Promise.all(Array.from(document.images).map(img => img.complete ? null :
            new Promise(r => { img.onload = img.onerror = r; }))).then(() => done());"""
    )
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.currentSrc || i.src, i.naturalWidth]);"
    )
    errors = [m for m in browser.get_log("browser") if m["level"] == "SEVERE"]
    return images, errors


@pytest.mark.parametrize("page", ["index.html", f"book/{CHAPTER}.html"])
def test_page_loads_images_without_console_errors(server, browser, page):
    lands_on = "book/intro.html" if page == "index.html" else None  # the site root redirects to the intro
    images, errors = open_page(browser, f"{server}/{page}", lands_on=lands_on)
    assert browser.title, "the page has a title"
    broken = [src for src, width in images if width == 0]
    assert not broken, f"images that did not load on {page}: {broken}"
    assert not errors, f"console errors on {page}: {[e['message'] for e in errors]}"
    if page != "index.html":
        assert images, f"{page} shows the chapter's figures"
    n_math = browser.execute_script("return document.querySelectorAll('.math').length;")
    if n_math:  # MathJax (served by the book itself) typeset every formula
        browser.execute_async_script(
            """const done = arguments[arguments.length - 1];
            const wait = () => (window.MathJax && MathJax.startup && MathJax.startup.promise)
                ? MathJax.startup.promise.then(() => done()) : setTimeout(wait, 100);
            wait();"""
        )
        typeset = browser.execute_script("return document.querySelectorAll('mjx-container').length;")
        assert typeset >= n_math, f"MathJax typeset {typeset} of {n_math} formulas on {page}"


def test_colab_link_points_at_the_chapter_notebook(server, browser):
    from selenium.webdriver.common.by import By

    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    expected = (f"https://colab.research.google.com/github/{repo['url'].split('github.com/')[1]}"
                f"/blob/{repo['branch']}/book/{CHAPTER}.ipynb")
    open_page(browser, f"{server}/book/{CHAPTER}.html")
    links = {a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a[href*='colab.research.google.com']")}
    assert expected in links, f"no launch link to {expected}; found {sorted(links)}"
    assert all(link == expected for link in links), f"a Colab link points elsewhere: {sorted(links)}"
