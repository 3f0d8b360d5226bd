"""Open every page of the built book in headless Chromium and check what a reader sees.

Each page of the table of contents (``_toc.yml``: the root and every chapter), and the
redirecting site root, is opened once; the test fails, naming the page, on

* a formula that MathJax did not typeset (a ``.math`` element without an SVG
  ``mjx-container``), a formula typeset as a TeX error, or MathJax failing to start;
* a TeX delimiter (``\\(``, ``\\)``, ``\\[``, ``\\]``, ``$$``) left in the page's text
  outside code;
* a failed request: an HTTP status >= 400 or a load that failed (Chrome's performance
  log, Network.responseReceived / Network.loadingFailed), or a request to any host other
  than the local server (the book must work offline);
* a console error, an image that did not load;
* on a chapter notebook's page: no figure, or a Colab link that is not the chapter's
  own.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# data:, blob:, about: never leave the machine
NETWORK_SCHEMES = {"http", "https", "ws", "wss", "ftp"}

pytestmark = [pytest.mark.browser, pytest.mark.book]


def toc_files(toc_path: Path = ROOT / "_toc.yml") -> list[str]:
    """The root and every ``file:`` entry of the table of contents, in reading order."""
    toc = yaml.safe_load(toc_path.read_text())
    files = [toc["root"]]

    def walk(node):
        for key in ("parts", "chapters", "sections"):
            for entry in node.get(key) or []:
                if "file" in entry:
                    files.append(entry["file"])
                walk(entry)

    walk(toc)
    return [re.sub(r"\.(md|ipynb|rst)$", "", f) for f in files]


TOC_FILES = toc_files()
# the site root redirects to the root page
PAGES = ["index.html"] + [f"{f}.html" for f in TOC_FILES]
NOTEBOOK_PAGES = [f"{f}.html" for f in TOC_FILES if (ROOT / f"{f}.ipynb").exists()]


def test_toc_lists_the_chapters():
    assert len(TOC_FILES) == len(set(TOC_FILES)), (
        f"a page is listed twice in _toc.yml: {TOC_FILES}"
    )
    assert NOTEBOOK_PAGES, "the table of contents names the chapter notebooks"


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
        "the browser test needs Debian's chromium and chromium-driver: `make "
        "setup-browser` "
        "(apt-get install -y chromium chromium-driver)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS + [
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        "--window-size=1280,2000",
    ]:
        options.add_argument(flag)
    options.set_capability(
        "goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"}
    )
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    # leave the start page before the first page of the book is opened
    driver.get("about:blank")
    yield driver
    driver.quit()


# --- what the page did on the network -------------------------------------------------


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme not in NETWORK_SCHEMES or (parts.hostname or "") in LOCAL_HOSTS


def network_problems(entries, tab: str) -> list[str]:
    """Failed and non-local requests in Chrome's performance log, for the tab ``tab``.

    The log also holds the browser's own pages (new-tab page and the like); an entry's
    ``webview`` is the DevTools target it came from, which is the tab's window handle.
    Only requests that started within ``entries`` count: the log is emptied right before
    a page is opened, so an unknown request id belongs to what the tab showed before.
    """
    problems, urls, answered = [], {}, set()
    for entry in entries:
        message = json.loads(entry["message"])
        if message.get("webview", tab) != tab:
            continue
        method, params = (
            message["message"]["method"],
            message["message"].get("params", {}),
        )
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            urls[params["requestId"]] = url
            if not _is_local(url):
                problems.append(f"request to a non-local host: {url}")
        elif method == "Network.webSocketCreated" and not _is_local(params["url"]):
            problems.append(f"web socket to a non-local host: {params['url']}")
        elif params.get("requestId") not in urls:
            continue
        elif (
            method == "Network.responseReceived" and params["response"]["status"] >= 400
        ):
            answered.add(params["requestId"])
            problems.append(
                f"HTTP {params['response']['status']}: {params['response']['url']}"
            )
        elif method == "Network.loadingFailed" and params["requestId"] not in answered:
            problems.append(
                f"failed to load ({params.get('errorText')}): "
                f"{urls[params['requestId']]}"
            )
    return problems


# --- what the page
# shows ---------------------------------------------------------------

_WAIT_FOR_IMAGES = """const done = arguments[arguments.length - 1];
Promise.all(Array.from(document.images).map(img => img.complete ? null :
    new Promise(r => { img.onload = img.onerror = r; }))).then(() => done());"""

# MathJax.startup.promise settles after the first typesetting pass; it is rejected when
# MathJax cannot load something it needs (it then leaves the rest of the page as TeX).
_WAIT_FOR_MATHJAX = """const done = arguments[arguments.length - 1];
const needed = document.querySelector('.math, script[src*="mathjax" i]') !== null;
const start = Date.now();
const wait = () => {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
        MathJax.startup.promise.then(
            () => done(null),
            e => done('MathJax failed: ' + (e && e.message || e)));
    } else if (!needed) {
        done(null);
    } else if (Date.now() - start > 30000) {
        done('MathJax did not start within 30 s');
    } else {
        setTimeout(wait, 100);
    }
};
wait();"""

# Let late requests (fonts, lazily loaded scripts) start and finish before the logs are
# read.
_WAIT_FOR_QUIET_NETWORK = """const done = arguments[arguments.length - 1];
let last = -1, quietSince = Date.now();
const start = Date.now();
const poll = () => {
    const n = performance.getEntriesByType('resource').length;
    if (n !== last) { last = n; quietSince = Date.now(); }
    if (Date.now() - quietSince > 500 || Date.now() - start > 10000) done();
    else setTimeout(poll, 100);
};
poll();"""

_PAGE_STATE = r"""
const formulas = Array.from(document.querySelectorAll('.math'));
const untypeset = formulas.filter(el => !el.querySelector('mjx-container svg'))
    .map(el => el.textContent.trim().slice(0, 100));
const texErrors = Array.from(
        document.querySelectorAll('mjx-container [data-mjx-error]'))
    .map(el => el.getAttribute('data-mjx-error'));
// MathJax's noundefined package shows an unknown macro as red text instead of an error
if (window.MathJax && MathJax.startup && MathJax.startup.document
        && MathJax.startup.toMML) {
    for (const item of MathJax.startup.document.math) {
        if (!item.root)
            continue;  // not compiled (MathJax stopped early): reported as not typeset
        const unknown = MathJax.startup.toMML(item.root)
            .match(/<mtext mathcolor="red">\\[^<]*/g) || [];
        texErrors.push(...unknown.map(
            m => 'undefined macro ' + m.replace(/^<[^>]*>/, '') + ' in ' + item.math));
    }
}
const skip = 'pre, code, kbd, samp, script, style, noscript, textarea, mjx-container';
const delimiter = /\\\(|\\\)|\\\[|\\\]|\$\$/;
const leftovers = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
    const node = walker.currentNode;
    const match = node.data.match(delimiter);
    if (match && node.parentElement && !node.parentElement.closest(skip)) {
        leftovers.push(
            node.data.slice(Math.max(0, match.index - 40), match.index + 60).trim());
    }
}
return {
    title: document.title,
    formulas: formulas.length,
    untypeset: untypeset,
    texErrors: texErrors,
    leftovers: leftovers,
    images: Array.from(document.images)
        .map(i => [i.currentSrc || i.src, i.naturalWidth]),
    colab: Array.from(document.querySelectorAll("a[href*='colab.research.google.com']"))
        .map(a => a.href),
};"""


def open_page(browser, url, lands_on=None):
    """Open ``url``, let it settle, and return what it shows and every problem found."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")  # drop what the previous page left in the logs
    browser.get_log("performance")
    browser.get(url)
    wait = WebDriverWait(browser, 30)
    if lands_on:  # a redirect page: wait until the browser has followed it
        wait.until(lambda d: d.current_url.endswith(lands_on))
    wait.until(
        lambda d: d.execute_script(
            "return document.readyState === 'complete' && !!document.body"
        )
    )
    # scroll through the page so that every image is requested, then wait until all have
    # settled
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight);")
    browser.execute_async_script(_WAIT_FOR_IMAGES)
    mathjax_failure = browser.execute_async_script(_WAIT_FOR_MATHJAX)
    browser.execute_async_script(_WAIT_FOR_QUIET_NETWORK)
    state = browser.execute_script(_PAGE_STATE)

    problems = network_problems(
        browser.get_log("performance"), browser.current_window_handle
    )
    problems += [
        f"console error: {m['message']}"
        for m in browser.get_log("browser")
        if m["level"] == "SEVERE"
    ]
    if mathjax_failure:
        problems.append(mathjax_failure)
    if state["untypeset"]:
        problems.append(
            f"{len(state['untypeset'])} of {state['formulas']} formulas not typeset, "
            f"the first: {state['untypeset'][:3]}"
        )
    problems += [
        f"TeX error in a formula: {e}" for e in dict.fromkeys(state["texErrors"])
    ]
    problems += [
        f"TeX delimiter left in the text: {t!r}" for t in state["leftovers"][:5]
    ]
    problems += [
        f"image did not load: {src}" for src, width in state["images"] if width == 0
    ]
    if not state["title"]:
        problems.append("the page has no title")
    return state, problems


@pytest.fixture(scope="module")
def visit(server, browser):
    """Open a page of the book once per module; later calls return the first visit's
    result.
    """
    seen = {}

    def _visit(page):
        if page not in seen:
            lands_on = f"{TOC_FILES[0]}.html" if page == "index.html" else None
            seen[page] = open_page(browser, f"{server}/{page}", lands_on=lands_on)
        return seen[page]

    return _visit


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_offline_without_errors(built_book, visit, page):
    assert (built_book / page).exists(), f"{page} was not built"
    state, problems = visit(page)
    if problems:
        pytest.fail(f"{page}:\n  " + "\n  ".join(problems), pytrace=False)
    if page in NOTEBOOK_PAGES:
        assert any(width for _, width in state["images"]), (
            f"{page} shows the chapter's figures"
        )


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_colab_link_points_at_the_chapter_notebook(visit, page):
    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    notebook = page.removesuffix(".html") + ".ipynb"
    expected = (
        "https://colab.research.google.com/github/"
        f"{repo['url'].split('github.com/')[1]}"
        f"/blob/{repo['branch']}/{notebook}"
    )
    links = set(visit(page)[0]["colab"])
    assert expected in links, (
        f"{page}: no launch link to {expected}; found {sorted(links)}"
    )
    assert all(link == expected for link in links), (
        f"{page}: a Colab link points elsewhere: {sorted(links)}"
    )
