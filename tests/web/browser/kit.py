"""What every browser test does on every page: watch the console (errors, CSP reports), keep
every request on 127.0.0.1, take full-page screenshots at phone and desktop width, and run
axe-core (WCAG 2.2 AA tags) failing on a serious or critical violation."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Request, Response

from tests.conftest import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")  # Debian's; Playwright never downloads a browser here
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PHONE = {"viewport": {"width": 360, "height": 780}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2}  # fmt: skip
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
AXE_JS = REPO_ROOT / "tests" / "servers" / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
LOOPBACK = "127.0.0.1"
# A document answered with an error status (the error pages the security tests expect).
_STATUS_LINE = re.compile(r"Failed to load resource: the server responded with a status of 4\d\d")


def screenshots_dir() -> Path:
    path = Path(os.environ.get("VERITY_SCREENSHOTS") or REPO_ROOT / "build" / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Watch:
    """Console errors, CSP violations and requests of one browser context."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "status URL" of 4xx/5xx answers
    expected_statuses: bool = False  # a test that visits error pages on purpose
    app_origin: str = ""  # Verity's; the test EHR's own pages (its login form) are not checked

    def attach(self, context: BrowserContext) -> None:
        context.on("request", self._request)
        context.on("page", self._page)
        context.on("console", self._console)
        context.on("response", self._response)

    def _page(self, page: Page) -> None:
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")

    def _console(self, message: ConsoleMessage) -> None:
        text = message.text
        source = str(message.location.get("url") or "")
        if self.app_origin and source and not source.startswith(self.app_origin):
            return
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.errors.append(f"CSP: {text}")
        elif message.type == "error":
            if self.expected_statuses and _STATUS_LINE.search(text):
                return
            self.errors.append(f"console: {text} ({message.location.get('url')})")

    def check(self) -> None:
        """No console error, no CSP report, and no request that left 127.0.0.1."""
        assert not self.errors, "\n".join([*self.errors, *self.failed])
        outside = [u for u in self.requests if not _on_loopback(u)]
        assert not outside, f"requests off 127.0.0.1: {outside}"


def _on_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return parts.hostname == LOOPBACK


_axe_source: str | None = None


def axe(page: Page, name: str = "") -> list[dict[str, Any]]:
    """Run axe-core on the page as it is (injected with evaluate: the CSP stays on); fail on a
    serious or critical violation, naming the rule ids and the elements."""
    global _axe_source
    if _axe_source is None:
        assert AXE_JS.is_file(), f"{AXE_JS} missing: run `bash tests/servers/install.sh`"
        _axe_source = AXE_JS.read_text(encoding="utf-8")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_axe_source)
    result = page.evaluate(
        "(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS
    )
    bad = [v for v in result["violations"] if v.get("impact") in ("serious", "critical")]
    report = [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:6]} {v['help']}"
        for v in bad
    ]
    assert not bad, f"axe on {name or page.url}:\n" + "\n".join(report)
    return list(result["violations"])


OVERFLOW = """() => {
  const w = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth <= w + 1) return [];
  return [...document.querySelectorAll('main *, header *')]
    .filter(e => e.getBoundingClientRect().right > w + 1
                 && ![...e.children].some(c => c.getBoundingClientRect().right > w + 1))
    .slice(0, 8)
    .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
              (e.className && typeof e.className === 'string' ? '.' + e.className : '') +
              ' right=' + Math.round(e.getBoundingClientRect().right));
}"""


def too_wide(page: Page) -> list[str]:
    """The innermost elements reaching past the viewport's right edge (a page wider than the
    phone: cut-off text, sideways scrolling of the whole page)."""
    return list(page.evaluate(OVERFLOW))


def shoot(page: Page, name: str) -> Path:
    """A full-page PNG in build/screenshots (or $VERITY_SCREENSHOTS)."""
    path = screenshots_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@dataclass
class Flow:
    """One person's flow: done on `page` (a phone, or a desktop for the keyboard flow); each
    page visited is also opened in the other width with the same session cookie, and both
    are photographed and checked with axe."""

    page: Page
    mirror: Page
    prefix: str
    pages_seen: list[str] = field(default_factory=list)
    too_wide: dict[str, list[str]] = field(default_factory=dict)  # page -> elements past 360 px

    def look(self, name: str, *, mirror: bool = True) -> None:
        """Screenshots and axe of the page as it is now, at both widths."""
        self.page.wait_for_load_state("load")
        first, second = self._widths()
        axe(self.page, f"{self.prefix}-{name}")
        if first == "phone":
            self.too_wide[name] = too_wide(self.page)
        shoot(self.page, f"{self.prefix}-{name}-{first}")
        self.pages_seen.append(name)
        if not mirror:
            return
        self.mirror.context.add_cookies(self.page.context.cookies())  # type: ignore[arg-type]
        target = self.page.url
        if self.mirror.url.split("#")[0] == target.split("#")[0]:
            self.mirror.reload()  # a new fragment alone would not load the page again
        else:
            self.mirror.goto(target)
        axe(self.mirror, f"{self.prefix}-{name}-{second}")
        if second == "phone":
            self.too_wide[name] = too_wide(self.mirror)
        shoot(self.mirror, f"{self.prefix}-{name}-{second}")

    def _widths(self) -> tuple[str, str]:
        phone = (self.page.viewport_size or {}).get("width", 0) < 600
        return ("phone", "desktop") if phone else ("desktop", "phone")
