"""Errors on the web app's pages as pages: the same stable code and `retryable` as the API's
problem+json, in words a person can act on."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from service.errors import SessionEnded, VerityError
from service.web.render import render
from service.web.security import SESSION_COOKIE

NEXT_STEP = {
    "VERITY-4600": "Start again from the EHR: open Verity from the patient's chart.",
    "VERITY-4601": "Open Verity again from the patient's chart in the EHR.",
    "VERITY-4602": "Go back, reload the page and send the form again.",
    "VERITY-4603": "Open Verity from the chart of the patient this belongs to.",
    "VERITY-4604": "Nothing to decide: Verity found this check clean. Go back to the result.",
    "VERITY-4605": "The decision already recorded stands; ask its author if it must change.",
    "VERITY-4606": "Only a photo of one pill that a person confirmed can teach the library.",
    "VERITY-4620": "Correct the search fields and search again.",
    "VERITY-4000": "Go back and correct the form.",
    "VERITY-4030": "Ask the EHR administrator for this permission.",
}


def error_page(request: Request, exc: VerityError) -> HTMLResponse:
    """The error as a page with its code; a 401 also drops the dead session cookie."""
    response = render(
        request,
        "error.html",
        title=exc.title,
        status=exc.status,
        error=exc,
        next_step=NEXT_STEP.get(exc.code, "Try again; if it keeps failing, tell the help desk "
                                "the code shown."),
    )  # fmt: skip
    if isinstance(exc, SessionEnded):
        response.delete_cookie(SESSION_COOKIE, path="/app")
    return response
