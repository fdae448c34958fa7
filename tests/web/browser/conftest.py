"""The browser tests' world: one live `verity serve` (web app on, its own database, the pill
library imported by the CLI, Orthanc as PACS) on the port the test EHR registered for it, and
one Debian Chromium driven by Playwright, with a phone and a desktop context per test.

Package-scoped, not session-scoped: Playwright's sync API marks its own event loop as running
between calls, so it must be gone before the async tests of other packages run."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.conftest import SHARED_DATA
from tests.fleet.fleet import TUNING, verity_cli
from tests.fleet.procs import Verity
from tests.servers.servers import client_pem_env
from tests.servers.smart import seed_practitioners
from tests.web.browser.kit import CHROMIUM, CHROMIUM_ARGS, DESKTOP, PHONE, Flow, Watch, shoot

pytestmark = pytest.mark.slow
READY_TIMEOUT_S = 240.0


@dataclass
class Live:
    """The running Verity: its URL, environment (for `verity` commands) and database."""

    url: str
    env: dict[str, str]
    database_url: str
    proc: Verity

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """A statement on Verity's database (tests read and age rows; Verity never sees it)."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []


@pytest.fixture(scope="package")
def live(
    auth_server: Any, fhir_server: Any, orthanc: Any, make_database: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Live]:  # fmt: skip
    """`verity serve` with the web app on, reached at the port the EHR redirects to."""
    seed_practitioners(fhir_server)
    workdir = tmp_path_factory.mktemp("browser-verity")
    database_url: str = make_database("browser")
    client = auth_server.web_clients["verity-web"]
    url = f"http://127.0.0.1:{auth_server.web_port}"
    env = {
        **TUNING,
        "DATABASE_URL": database_url,
        "VERITY_DATA_DIR": str(workdir / "data"),
        "VERITY_AUTH__ISSUER": auth_server.issuer,
        "VERITY_AUTH__AUDIENCE": auth_server.api_audience,
        "VERITY_FHIR__BASE_URL": fhir_server.base_url,
        **client_pem_env(auth_server.clients["verity-rs384"]),
        "VERITY_PACS__BASE_URL": orthanc.base_url,
        "VERITY_WEB__ENABLED": "true",
        "VERITY_WEB__PUBLIC_URL": url,
        "VERITY_WEB__CLIENT_ID": client.client_id,
        "VERITY_WEB__PRIVATE_KEY": client.private_pem().decode(),
        "VERITY_WEB__KEY_ID": client.kid,
        "VERITY_WEB__SIGNING_ALG": client.alg,
        "VERITY_WEB__SESSION_SECRET": secrets.token_urlsafe(32),
    }
    verity_cli(env, "db", "upgrade")
    verity_cli(env, "library", "import", str(SHARED_DATA / "pills"))
    proc = Verity("browser", ["serve", "--port", str(auth_server.web_port)], env,
                  workdir / "verity.log", auth_server.web_port)  # fmt: skip
    proc.start()
    try:
        proc.wait_ready(READY_TIMEOUT_S)
        yield Live(url, env, database_url, proc)
    finally:
        proc.stop()


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def watch() -> Watch:
    return Watch()


def _context(browser: Browser, watch: Watch, options: dict[str, Any]) -> BrowserContext:
    context = browser.new_context(**options, accept_downloads=True)
    context.set_default_timeout(30_000)
    watch.attach(context)
    return context


@pytest.fixture
def phone(browser: Browser, watch: Watch) -> Iterator[BrowserContext]:
    context = _context(browser, watch, PHONE)
    yield context
    context.close()


@pytest.fixture
def desktop(browser: Browser, watch: Watch) -> Iterator[BrowserContext]:
    context = _context(browser, watch, DESKTOP)
    yield context
    context.close()


@pytest.fixture
def flow(
    live: Live,
    phone: BrowserContext,
    desktop: BrowserContext,
    watch: Watch,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., Flow]]:
    """flow(prefix, primary="phone"): a Flow whose pages are checked at both widths; at the
    end of the test, no console error, CSP report or off-loopback request was seen."""

    watch.app_origin = live.url

    flows: list[Flow] = []

    def make(prefix: str, primary: str = "phone") -> Flow:
        first, second = (phone, desktop) if primary == "phone" else (desktop, phone)
        flows.append(Flow(first.new_page(), second.new_page(), prefix))
        return flows[-1]

    yield make
    if getattr(request.node, "rep_failed", False):  # what the browser showed, for the report
        for n, page in enumerate(phone.pages + desktop.pages):
            shoot(page, f"FAILED-{request.node.name}-{n}")
        return
    watch.check()
    wide = {f"{f.prefix}-{k}": v for f in flows for k, v in f.too_wide.items() if v}
    assert not wide, f"pages wider than the 360 px phone (innermost elements past it): {wide}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed:
        item.rep_failed = True  # type: ignore[attr-defined]
    return report


def launch(page: Page, auth_server: Any, live: Live, patient: str, user: str) -> None:
    """Open Verity from the EHR as `user` for `patient` (Patient/<id> or id); ends on /app/."""
    pid = patient.split("/")[-1]
    page.goto(auth_server.ehr_launch_url(f"{live.url}/app/launch", pid, user))
    page.wait_for_url(f"{live.url}/app/")


def fhir_admin(fhir_server: Any, query: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{fhir_server.base_url}/{query}", headers=fhir_server.admin_headers(),
                  timeout=10)  # fmt: skip
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", [])]


def photo(product_id: str, name: str) -> Path:
    path = SHARED_DATA / "pills" / product_id / name
    assert path.is_file(), path
    return path
