"""The built site (site/, from `make docs`) in a real browser: Debian's headless Chromium, driven
through chromedriver by Selenium, opens every page served by a local HTTP server on 127.0.0.1 and
some of them again as files (file://), as a reader would.

A page fails when it logs a JavaScript error or a failed request, shows an image that did not load
(naturalWidth 0), leaves mathematics as raw TeX (an arithmatex element without KaTeX's output, a
KaTeX error, or ``$$``, ``\\(`` or ``\\[`` in its visible text outside code), or links to a page
or an anchor that does not exist. Search must find "kappa". Screenshots of the home page, a
tutorial and THEORY at E9 go to SCREENSHOTS (build/screenshots unless TINYNORMACT_SCREENSHOTS says
otherwise).

    .venv/bin/python -m pytest docs/_tools/test_site.py     # after make docs
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "site"
THEORY_SOURCE = ROOT / "docs" / "THEORY.md"
SCREENSHOTS = Path(os.environ.get("TINYNORMACT_SCREENSHOTS") or ROOT / "build" / "screenshots")
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PAGES = sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html") if p.name != "404.html")
TUTORIAL_PAGES = [p for p in PAGES if re.match(r"tutorials/\d\d_", p)]
# the tutorial of the screenshot: the Gaussian moments one (math and figures), wherever it is numbered
TUTORIAL = next((p for p in TUTORIAL_PAGES if "gaussian_moments" in p), (TUTORIAL_PAGES or [""])[0])

pytestmark = [
    pytest.mark.skipif(not (SITE / "index.html").exists(), reason="site/ is not built: run make docs"),
    pytest.mark.skipif(shutil.which(CHROMEDRIVER) is None, reason="chromium-driver is not installed"),
]

# Run in the page: what a reader would see that is wrong with it.
PAGE_PROBLEMS = """
const problems = [];
for (const image of document.images) {
  if (!image.complete || image.naturalWidth === 0) problems.push("image did not load: " + image.src);
}
for (const element of document.querySelectorAll(".arithmatex")) {
  if (!element.querySelector(".katex")) {
    problems.push("math not rendered: " + element.textContent.slice(0, 80));
  }
}
for (const error of document.querySelectorAll(".katex-error")) {
  problems.push("KaTeX error: " + error.title + " in " + error.textContent.slice(0, 80));
}
const article = document.querySelector("article") || document.body;
const copy = article.cloneNode(true);
for (const code of copy.querySelectorAll("pre, code, .katex")) code.remove();
document.body.appendChild(copy);
copy.style.position = "absolute";
const text = copy.innerText;
copy.remove();
for (const raw of ["$$", "\\\\(", "\\\\["]) {
  const at = text.indexOf(raw);
  if (at >= 0) problems.push("raw TeX " + raw + " in the text: " + text.slice(Math.max(0, at - 40), at + 40));
}
return problems;
"""
MATH_DONE = "return [...document.querySelectorAll('.arithmatex')].every(e => e.querySelector('.katex'))"


class Ids(html.parser.HTMLParser):
    """The ids (and anchor names) of an HTML file."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)


@functools.cache
def ids_of(page: Path) -> frozenset[str]:
    parser = Ids()
    parser.feed(page.read_text(errors="replace"))
    return frozenset(parser.ids)


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(Quiet, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test reports failures, not every request
        pass


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--allow-file-access-from-files"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def open_page(browser, url: str) -> list[str]:
    """Load ``url``, wait for its math, and return every problem a reader would see."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(url)
    try:
        WebDriverWait(browser, 20).until(lambda d: d.execute_script(MATH_DONE))
    except Exception:  # noqa: BLE001 (reported below as unrendered math)
        pass
    problems = list(browser.execute_script(PAGE_PROBLEMS))
    for entry in browser.get_log("browser"):
        if entry["level"] == "SEVERE":
            problems.append("console: " + entry["message"])
    return problems


def screenshot(browser, path: Path) -> None:
    """Save what the reader sees once the math is typeset and the page has settled (no CSS
    transition running: after a jump the header's title is mid-fade otherwise)."""
    from selenium.webdriver.support.ui import WebDriverWait

    settled = f"return ({MATH_DONE[len('return '):]}) && document.getAnimations().length === 0"
    try:
        WebDriverWait(browser, 20).until(lambda d: d.execute_script(settled))
    except Exception:  # noqa: BLE001 (the screenshot is still worth having)
        pass
    browser.save_screenshot(str(path))


def broken_links(browser, base: str, page: str) -> list[str]:
    """Links of the open page to a page of the site that does not exist or lacks the anchor."""
    hrefs = browser.execute_script("return [...document.querySelectorAll('a[href]')].map(a => a.href)")
    broken = []
    for href in set(hrefs):
        if not href.startswith(base):
            continue
        target, fragment = urldefrag(href)
        path = SITE / unquote(urlparse(target).path).lstrip("/")
        if path.is_dir():
            path = path / "index.html"
        if not path.exists():
            broken.append(f"{page} -> {href}: no such page")
        elif fragment and unquote(fragment) not in ids_of(path) and not fragment.startswith("__"):
            broken.append(f"{page} -> {href}: no anchor #{fragment}")
    return broken


def test_the_site_has_every_kind_of_page() -> None:
    assert len(TUTORIAL_PAGES) == len(list((ROOT / "tutorials").glob("[0-9][0-9]_*.py")))
    assert "THEORY.html" in PAGES and "index.html" in PAGES
    assert any(p.startswith("reports/") for p in PAGES) and any(p.startswith("api/tests/") for p in PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_page_reads_as_it_should(browser, server, page: str) -> None:
    problems = open_page(browser, server + page) + broken_links(browser, server, page)
    assert not problems, "\n".join(problems)


def test_theory_has_an_anchor_and_typeset_math_for_every_equation(browser, server) -> None:
    numbers = {int(n) for n in re.findall(r"\bE(\d+)\b", THEORY_SOURCE.read_text())}
    assert open_page(browser, server + "THEORY.html") == []
    missing = [n for n in sorted(numbers) if not browser.find_elements("id", f"e{n}")]
    assert not missing, f"no anchor for E{missing}"
    rendered = browser.execute_script("return document.querySelectorAll('.katex').length")
    assert rendered > 200, f"only {rendered} typeset formulas in THEORY"
    (SCREENSHOTS).mkdir(parents=True, exist_ok=True)
    browser.get(server + "THEORY.html#e9")
    screenshot(browser, SCREENSHOTS / "theory-e9.png")


def test_api_links_equation_numbers_and_the_table_links_functions_and_tests(browser, server) -> None:
    api_pages = [p.read_text() for p in (SITE / "api").glob("tinynormact*.html")]
    link = re.compile(r'class="eq-ref" href="\.\./THEORY\.html#e\d+"')
    equation_links = sum(len(link.findall(page)) for page in api_pages)
    assert equation_links > 50, f"only {equation_links} equation numbers in the docstrings link to THEORY"
    browser.get(server + "THEORY.html#equation-function-test")
    cells = browser.execute_script(
        "const t = document.getElementById('equation-function-test').nextElementSibling;"
        "const table = t.tagName === 'TABLE' ? t : t.querySelector('table');"
        "return [...table.querySelectorAll('tbody tr')].map(r => [...r.cells].map(c => c.innerHTML));")
    assert len(cells) > 20
    unlinked = [row[1] for row in cells if "api/" not in row[1]]
    assert len(unlinked) <= 3, f"function cells without an API link: {unlinked}"
    assert sum("api/tests/" in row[2] for row in cells) > len(cells) / 2


def test_search_finds_kappa(browser, server) -> None:
    for base in (server, SITE.as_uri() + "/"):
        assert search(browser, base + "index.html", "kappa") > 0, f"search found nothing at {base}"


def search(browser, url: str, word: str) -> int:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    box = browser.find_element(By.CSS_SELECTOR, "input.md-search__input")
    box.click()
    box.send_keys(word)
    found = "return document.querySelectorAll('.md-search-result__item').length"
    try:
        WebDriverWait(browser, 20).until(lambda d: d.execute_script(found) > 0)
    except Exception:  # noqa: BLE001 (0 results is the failure reported)
        return 0
    return browser.execute_script(found)


@pytest.mark.parametrize("page", ["index.html", "THEORY.html", TUTORIAL])
def test_pages_work_opened_as_files(browser, page: str) -> None:
    problems = [p for p in open_page(browser, (SITE / page).as_uri()) if "favicon" not in p]
    assert not problems, "\n".join(problems)


def test_screenshots_of_the_home_page_and_a_tutorial(browser, server) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for page, name in (("index.html", "home.png"), (TUTORIAL, "tutorial.png")):
        assert open_page(browser, server + page) == []
        screenshot(browser, SCREENSHOTS / name)
        assert (SCREENSHOTS / name).stat().st_size > 10_000
