"""What the audit view shows reviewers: a search over every verification (pill and imaging)
with its decision and FHIR write state, keyset-paged; verdicts and human overrides per day;
and the same search as CSV rows. One verification in full is in `audit_detail.py`."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, time, timedelta

from service.config import AuditViewSettings
from service.errors import AuditSearchInvalid
from service.store import verifications as audit
from service.store.pool import Connect
from service.verify.imaging.results import FindingCode
from service.verify.pills.results import Finding, Verdict

KINDS = ("pill", "imaging")
VERDICTS = (*(v.value for v in Verdict), "PASSED", "FAILED", "INCOMPLETE")
FINDINGS = (*(f.value for f in Finding), *(f.value for f in FindingCode))
MAX_REF = 200
_REF = re.compile(r"^[A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")
CSV_COLUMNS = ("id", "created_at", "kind", "verdict", "findings", "patient", "order_study",
               "decided_by", "decision", "decided_at", "fhir_status")  # fmt: skip


@dataclass(frozen=True)
class AuditQuery:
    """An auditor's search criteria, as typed in the form and kept in the session."""

    patient: str | None = None
    order: str | None = None
    verdict: str | None = None
    finding: str | None = None
    decided_by: str | None = None
    kind: str | None = None
    date_from: date | None = None
    date_to: date | None = None

    @classmethod
    def parse(cls, form: Mapping[str, object]) -> AuditQuery:
        """Criteria from form fields (blank = any); AuditSearchInvalid names the bad field."""
        text = {f.name: _text(form.get(f.name)) for f in fields(cls)}
        patient = text["patient"]
        if patient and "/" not in patient:
            patient = f"Patient/{patient}"
        for name, ref in (("patient", patient), ("order", text["order"]),
                          ("decided_by", text["decided_by"])):  # fmt: skip
            if ref is not None and not _REF.match(ref):
                raise AuditSearchInvalid(f"'{name}' must be a FHIR reference like Type/id")
        query = cls(
            patient=patient, order=text["order"], decided_by=text["decided_by"],
            verdict=_choice("verdict", text["verdict"], VERDICTS),
            finding=_choice("finding", text["finding"], FINDINGS),
            kind=_choice("kind", text["kind"], KINDS),
            date_from=_date("from", text["date_from"]), date_to=_date("to", text["date_to"]),
        )  # fmt: skip
        if query.date_from and query.date_to and query.date_from > query.date_to:
            raise AuditSearchInvalid("the 'from' date is after the 'to' date")
        return query

    def to_session(self) -> dict[str, str]:
        """Plain strings for the session row (JSON); blanks left out."""
        return {k: str(v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_session(cls, data: object) -> AuditQuery:
        """The criteria a session kept; anything unreadable reads as no criteria."""
        if not isinstance(data, dict):
            return cls()
        try:
            return cls.parse(data)
        except AuditSearchInvalid:
            return cls()

    def form_values(self) -> dict[str, str]:
        """What the form shows back: every field, blank when not set."""
        return {f.name: str(getattr(self, f.name) or "") for f in fields(self)}

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def filter(self) -> audit.AuditFilter:
        """Dates are whole days in UTC: 'to' includes its own day."""
        return audit.AuditFilter(
            kind=self.kind, patient_ref=self.patient, order_ref=self.order, verdict=self.verdict,
            finding=self.finding, decided_by=self.decided_by, since=day_start(self.date_from),
            until=day_start(self.date_to + timedelta(days=1) if self.date_to else None),
        )  # fmt: skip


def _text(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise AuditSearchInvalid("a search field is not text")
    value = value.strip()
    if len(value) > MAX_REF:
        raise AuditSearchInvalid(f"a search field is longer than {MAX_REF} characters")
    return value or None


def _choice(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if value not in allowed:
        raise AuditSearchInvalid(f"'{name}' is not one of the listed values")
    return value


def _date(name: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise AuditSearchInvalid(f"'{name}' is not a date (YYYY-MM-DD)") from None


def day_start(day: date | None) -> datetime | None:
    return datetime.combine(day, time(), tzinfo=UTC) if day else None


# --- the results list: keyset paging with an opaque cursor (a time and a Verity id) ---------


@dataclass(frozen=True)
class AuditPage:
    rows: list[audit.AuditRow]
    next_cursor: str | None  # "Older" link; None on the last page


def cursor_of(row: audit.AuditRow) -> str:
    micros = int(row.created_at.timestamp()) * 1_000_000 + row.created_at.microsecond
    return f"{micros}_{row.id}"


def read_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """The (created_at, id) a cursor names; a malformed one is refused, not ignored."""
    if not cursor:
        return None
    micros, _, vid = cursor.partition("_")
    try:
        moment = datetime.fromtimestamp(int(micros) // 1_000_000, UTC).replace(
            microsecond=int(micros) % 1_000_000
        )
        return moment, str(uuid.UUID(vid))
    except (ValueError, OverflowError, OSError):
        raise AuditSearchInvalid("the page link is not valid; start the search again") from None


async def search(
    connect: Connect, query: AuditQuery, settings: AuditViewSettings, cursor: str | None = None
) -> AuditPage:
    """One page of matching verifications, newest first."""
    after = read_cursor(cursor)
    async with connect() as conn:
        rows = await audit.audit_page(
            conn, query.filter(), limit=settings.page_size + 1, after=after
        )
    more = len(rows) > settings.page_size
    rows = rows[: settings.page_size]
    return AuditPage(rows, cursor_of(rows[-1]) if more and rows else None)


# --- CSV: the whole search, streamed in batches, bounded ------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """A cell a spreadsheet will not run: text starting like a formula gets a leading quote
    (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_row(row: audit.AuditRow) -> list[str]:
    values = (row.id, row.created_at.isoformat(), row.kind, row.verdict,
              " ".join(row.findings), row.patient_ref, row.order_ref, row.decided_by,
              row.decision, row.decided_at.isoformat() if row.decided_at else None,
              row.fhir_status)  # fmt: skip
    return [csv_cell(v) for v in values]


async def csv_lines(
    connect: Connect, query: AuditQuery, settings: AuditViewSettings
) -> AsyncIterator[str]:
    """The header, then every matching row newest first (at most `csv_max_rows`), one
    database step per batch so no connection is held while the client reads."""
    yield _csv_text([list(CSV_COLUMNS)])
    after: tuple[datetime, str] | None = None
    left = settings.csv_max_rows
    while left > 0:
        async with connect() as conn:
            rows = await audit.audit_page(
                conn, query.filter(), limit=min(settings.csv_batch_rows, left), after=after
            )
        if not rows:
            return
        yield _csv_text([csv_row(r) for r in rows])
        left -= len(rows)
        after = (rows[-1].created_at, rows[-1].id)


def _csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def csv_filename(today: date) -> str:
    """The export's file name: the day only, never patient data."""
    return f"verity-audit-{today:%Y%m%d}.csv"
