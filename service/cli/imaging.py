"""`verity verify-study`: one imaging study checked against its order, patient and archive.

From files (an ImagingStudy JSON beside its Patient and ServiceRequest, or a dataset case
folder) or with `--dicom DIR`, it is a dry run: the DICOM is read from the folder through the
same source interface as DICOMweb, and what would be written is printed. An ImagingStudy id
on the FHIR server without `--dicom` is read from the EHR and the PACS its endpoint names (when
the hospital allowed it), recorded, and its report queued for the EHR."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from functools import partial
from pathlib import Path
from typing import Any

from service.config import Settings
from service.errors import FhirNotConfigured, FileUnreadable
from service.fhir.client import FhirClient, create_fhir_client
from service.fhir.orders import StaticOrderSource
from service.fhir.references import parse_reference
from service.models.image_embedder import load_image_embedder
from service.store.database import Database
from service.store.pool import rolled_back
from service.verify.imaging.results import ImagingVerification, Outcome, StudyCounts
from service.workflows.imaging.check import check_study
from service.workflows.imaging.jobs import record_check
from service.workflows.imaging.read import STUDY_TYPE, ResourceSource, read_study
from service.workflows.imaging.sources import PacsSources, folder_source
from service.workflows.record import Caller

_MARK = {Outcome.PASSED: "ok  ", Outcome.FAILED: "FAIL", Outcome.NOT_APPLICABLE: "n/a ",
         Outcome.COULD_NOT_CHECK: "??  ", Outcome.UNCERTAIN: "?!  "}  # fmt: skip


def verify_study(args: argparse.Namespace, settings: Settings) -> int:
    """Check one study and print the result (see the module docstring)."""
    return asyncio.run(_verify_study(args, settings))


def _study_files(value: str) -> tuple[list[Path], Path | None] | None:
    """The FHIR files of a study given as a path, and its DICOM folder if it is a case folder;
    None when `value` is not a path (an id on the FHIR server)."""
    path = Path(value).expanduser()
    if path.is_dir() and (path / "fhir").is_dir():
        dicom = path / "dicom"
        return sorted((path / "fhir").glob("*.json")), dicom if dicom.is_dir() else None
    if path.is_file():
        return sorted(path.parent.glob("*.json")), None
    if value.lower().endswith(".json") or value.startswith(("/", "./", "../", "~")):
        raise FileUnreadable(f"{value} does not exist")
    return None


async def _source(
    value: str, fhir: FhirClient | None, files: list[Path] | None
) -> tuple[ResourceSource, str]:
    if files is not None:
        return StaticOrderSource.from_files(files, STUDY_TYPE)
    assert fhir is not None
    return fhir, parse_reference(value, STUDY_TYPE, fhir.base_url)


async def _verify_study(args: argparse.Namespace, settings: Settings) -> int:
    given = _study_files(args.imaging_study)
    files, case_dicom = given if given is not None else (None, None)
    dicom = Path(args.dicom).expanduser() if args.dicom else case_dicom
    if dicom is not None and not dicom.is_dir():
        raise FileUnreadable(f"{dicom} is not a folder of DICOM files")
    dry_run = files is not None or dicom is not None
    if files is None and not settings.fhir.base_url:
        raise FhirNotConfigured(
            f"{args.imaging_study!r} is not a file, and no FHIR server is configured "
            "(VERITY_FHIR__BASE_URL) to read it from"
        )
    fhir = None if files is not None else await create_fhir_client(settings.fhir)
    pacs = (
        PacsSources.folder(settings.pacs, folder_source(dicom, settings.pacs))
        if dicom is not None
        else PacsSources(settings.pacs, smart_auth=fhir.auth if fhir else None)
    )
    db = Database(settings)
    try:
        source, ref = await _source(args.imaging_study, fhir, files)
        order = await read_study(source, ref)
        await db.start()
        connect = partial(rolled_back, db.pool) if dry_run else db.pool.connection
        progress = _Progress(enabled=not args.json and sys.stderr.isatty())
        checked = await check_study(
            settings, order, await pacs.for_order(order), connect, caller="verity cli",
            progress=progress, embedder=await asyncio.to_thread(load_image_embedder, settings),
        )  # fmt: skip
        progress.done()
        async with connect() as conn, conn.transaction():
            recorded = await record_check(
                conn, settings, checked, deliver=not dry_run, caller=Caller("verity cli"),
                keep_history=not dry_run,
            )  # fmt: skip
    finally:
        await pacs.aclose()
        if fhir is not None:
            await fhir.aclose()
        await db.stop()
    if args.json:
        print(json.dumps({**recorded.result, "recorded": not dry_run}, indent=2))
    else:
        print("\n".join(summary(checked.verification, recorded.result["fhir"], dry_run=dry_run)))
    return 0


class _Progress:
    """One updating line on stderr (a terminal only): instances listed, fetched, checked."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.shown = False

    async def __call__(self, c: StudyCounts) -> None:
        if not self.enabled or not c.instances_found:
            return
        width = 30
        filled = width * c.instances_checked // c.instances_found
        bar = "#" * filled + "." * (width - filled)
        print(
            f"\r[{bar}] {c.instances_checked}/{c.instances_found} instances checked "
            f"({c.instances_fetched} fetched)",
            end="", file=sys.stderr, flush=True,
        )  # fmt: skip
        self.shown = True

    def done(self) -> None:
        if self.shown:
            print(file=sys.stderr)


def summary(v: ImagingVerification, fhir: dict[str, Any], *, dry_run: bool) -> list[str]:
    """A short human account: the study, each check, the outcome, what is written."""
    c = v.counts
    lines = [
        f"Study    {v.study_ref} (order {v.order_ref or 'none'}, accession "
        f"{v.accession or 'none'})",
        f"PACS     {c.series_found} series, {c.instances_found} instances "
        f"(the EHR lists {c.series_expected} series, {c.instances_expected} instances); "
        f"{c.instances_checked} decoded and fingerprinted",
    ]
    for check in v.checks:
        lines.append(f"  {_MARK[check.outcome]} {check.code.value:<22} {check.summary}")
    findings = ", ".join(f.value for f in v.findings) or "none"
    lines.append(f"Outcome  {v.outcome}: findings {findings}")
    return lines + _written(fhir, dry_run=dry_run)


def _written(fhir: dict[str, Any], *, dry_run: bool) -> list[str]:
    status = fhir.get("status")
    if status == "queued":
        return [f"Write    queued for the EHR: DiagnosticReport + Observations + DetectedIssues "
                f"+ Provenance ({fhir['identifier']})"]  # fmt: skip
    lines = ["Write    would write to the EHR (--json shows the resources):"]
    counts: dict[str, int] = {}
    for entry in (fhir.get("bundle") or {}).get("entry", []):
        rtype = entry.get("resource", {}).get("resourceType", "?")
        counts[rtype] = counts.get(rtype, 0) + 1
    lines += [f"           {n} x {rtype}" for rtype, n in counts.items()]
    if dry_run:
        lines.append("         dry run: nothing recorded in the audit table, nothing sent")
    return lines


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    vs = sub.add_parser(
        "verify-study",
        help="check an imaging study against its order, patient and archive",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    vs.add_argument(
        "--imaging-study",
        required=True,
        metavar="FILE_OR_ID",
        help="an ImagingStudy JSON file (its Patient and ServiceRequest JSON beside it), a "
        "dataset case folder (fhir/ + dicom/), or an ImagingStudy id, reference or URL on the "
        "FHIR server",
    )
    vs.add_argument(
        "--dicom", metavar="DIR", help="read the study's DICOM from this folder (a dry run)"
    )
    vs.add_argument("--json", action="store_true", help="print the full result as JSON")
    vs.set_defaults(handler=verify_study)
