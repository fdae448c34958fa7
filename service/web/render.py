"""Pages from Jinja templates (autoescaped), with what every page needs: the person, the CSRF
token for its forms, a title that never names the patient."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from service import __version__
from service.web.security import CSRF_FIELD

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def product_label(product: dict[str, Any]) -> str:
    """How a page names a library product: its name, else its NDC, never a bare internal id."""
    if product.get("name"):
        return str(product["name"])
    ndcs = product.get("ndcs") or []
    return f"NDC {ndcs[0]} (no name in the library)" if ndcs else str(product.get("id"))


_env.filters["product"] = product_label


def render(
    request: Request, template: str, title: str, status: int = 200, **context: Any
) -> HTMLResponse:
    """The page: `title` is generic ("Medication check"), never patient data."""
    session = getattr(request.state, "web_session", None)
    html = _env.get_template(template).render(
        title=title,
        session=session,
        csrf_field=CSRF_FIELD,
        csrf_token=session.csrf if session is not None else "",
        version=__version__,
        **context,
    )
    return HTMLResponse(html, status_code=status)
