"""`verity library studies enrol|list|reembed|remove`: the imaging reference library."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from service.config import Settings
from service.errors import DatasetInvalid, FileUnreadable, ModelNotLoaded, UnknownImagingReference
from service.evaluation.studies import archive_folders, read_case
from service.models.image_embedder import ImageEmbedder, load_image_embedder
from service.store.database import Database
from service.store.pool import connect, reuse
from service.workflows.imaging.check import enrol_study
from service.workflows.imaging.library import (
    enrol_references,
    listing,
    reembed,
    reference_label,
    remove_references,
)
from service.workflows.imaging.sources import folder_source

T = TypeVar("T")
Work = Callable[[psycopg.AsyncConnection, ImageEmbedder | None], Awaitable[T]]


def _models(settings: Settings, names: list[str] | None) -> ImageEmbedder:
    """The imaging models (those named, else the configured ones), loaded once."""
    content = settings.imaging.content
    if names:
        content = content.model_copy(update={"models": names, "enabled": True})
    embedder = load_image_embedder(
        settings.model_copy(
            update={"imaging": settings.imaging.model_copy(update={"content": content})}
        )
    )
    if embedder is None:
        raise ModelNotLoaded("imaging.content.enabled is off: no imaging model to embed with")
    return embedder


async def _run(
    settings: Settings, work: Work[T], *, models: bool, names: list[str] | None = None
) -> T:
    """Run `work(conn, embedder)` against the configured database."""
    embedder = await asyncio.to_thread(_models, settings, names) if models else None
    db = Database(settings)
    try:
        await db.start()
        async with await connect(db.url or "", settings.db) as conn:
            return await work(conn, embedder)
    finally:
        await db.stop()


def _dicom_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileUnreadable(f"{folder} is not a folder")
    files = sorted(p for p in folder.rglob("*.dcm") if p.is_file())
    if not files:
        raise DatasetInvalid(f"{folder} holds no .dcm file")
    return files


def studies_enrol(args: argparse.Namespace, settings: Settings) -> int:
    """Enrol a dataset's archive/ studies, or a folder of DICOM files under one label."""
    if args.dicom:
        return _enrol_files(args, settings)
    dataset = Path(args.directory)
    folders = archive_folders(dataset)
    if not folders:
        raise DatasetInvalid(f"{dataset} has no archive/<study>/fhir folders")

    async def work(conn: psycopg.AsyncConnection, embedder: ImageEmbedder | None) -> int:
        prints = 0
        for n, folder in enumerate(folders, 1):
            order = await read_case(folder)
            source = folder_source(folder / "dicom", settings.pacs)
            prints += await enrol_study(settings, order, source, reuse(conn), embedder=embedder)
            print(f"  {n}/{len(folders)} studies", file=sys.stderr)
        return prints

    prints = asyncio.run(_run(settings, work, models=True))
    print(
        f"enrolled {len(folders)} archive studies ({prints} fingerprints, labelled images embedded)"
    )
    return 0


def _enrol_files(args: argparse.Namespace, settings: Settings) -> int:
    if not args.modality or not args.body_part:
        raise DatasetInvalid("--dicom needs --modality and --body-part")
    lib = settings.imaging.library
    label = reference_label(args.modality, args.body_part, args.laterality, args.view,
                            max_view_chars=lib.max_view_chars)  # fmt: skip
    files = _dicom_files(Path(args.dicom))

    async def work(
        conn: psycopg.AsyncConnection, embedder: ImageEmbedder | None
    ) -> tuple[int, int]:
        assert embedder is not None
        images = 0
        for start in range(0, len(files), lib.max_files):
            chunk = [p.read_bytes() for p in files[start : start + lib.max_files]]
            images += (await enrol_references(settings, embedder, reuse(conn), chunk, label)).images
            print(f"  {min(start + lib.max_files, len(files))}/{len(files)} files", file=sys.stderr)
        return len(files), images

    n, images = asyncio.run(_run(settings, work, models=True))
    print(f"enrolled {n} DICOM files as {label.modality} {label.body_part} references"
          f" ({images} images)")  # fmt: skip
    return 0


def studies_list(args: argparse.Namespace, settings: Settings) -> int:
    """Counts per label and model version, and the newest labelled images."""

    async def work(conn: psycopg.AsyncConnection, _: ImageEmbedder | None) -> Any:
        return await listing(reuse(conn), source=args.source, limit=args.limit)

    counts, total, items = asyncio.run(_run(settings, work, models=False))
    print(f"{'source':<10} {'modality':<8} {'body part':<12} {'side':<4} {'view':<12} "
          f"{'model version':<28} images")  # fmt: skip
    for c in counts:
        version = c.model_version or "(not embedded)"
        print(f"{c.source:<10} {c.modality:<8} {c.body_part:<12} {c.laterality or '':<4} "
              f"{(c.view or '')[:12]:<12} {version:<28} {c.images}")  # fmt: skip
    print(f"{total} labelled images; newest {len(items)}:")
    for i in items:
        print(f"  {i.study_uid}  {i.sop_uid}  frame {i.frame}  {i.modality} {i.body_part}"
              f"  {', '.join(i.model_versions) or '(not embedded)'}")  # fmt: skip
    return 0


def studies_reembed(args: argparse.Namespace, settings: Settings) -> int:
    """Embed every stored image that lacks an embedding under the models' current versions."""
    names = [args.model] if args.model else None

    def progress(version: str, done: int) -> None:
        print(f"  {version}: {done} images", file=sys.stderr)

    async def work(conn: psycopg.AsyncConnection, embedder: ImageEmbedder | None) -> dict[str, int]:
        assert embedder is not None
        batch = settings.imaging.library.reembed_batch
        return await reembed(embedder, reuse(conn), batch=batch, progress=progress)

    done = asyncio.run(_run(settings, work, models=True, names=names))
    for version, n in done.items():
        print(f"re-embedded {n} images with {version}")
    return 0


def studies_remove(args: argparse.Namespace, settings: Settings) -> int:
    """Delete a reference study's images (with --archive also its archive history)."""

    async def work(conn: psycopg.AsyncConnection, _: ImageEmbedder | None) -> int:
        return await remove_references(reuse(conn), args.study_uid, archive=args.archive)

    removed = asyncio.run(_run(settings, work, models=False))
    if not removed:
        raise UnknownImagingReference("the library holds no image of this study")
    print(f"removed {removed} images")
    return 0


def add_commands(lib_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    studies = lib_sub.add_parser("studies", help="the imaging reference library")
    sub = studies.add_subparsers(dest="studies_command", required=True, metavar="ACTION")
    enrol = sub.add_parser(
        "enrol", help="enrol a studies dataset's archive/ studies, or --dicom FOLDER under a label"
    )
    enrol.add_argument("directory", metavar="DIR", nargs="?", help="a dataset with archive/")
    enrol.add_argument("--dicom", metavar="FOLDER", help="DICOM files (*.dcm) of one label")
    enrol.add_argument(
        "--modality", metavar="MODALITY", help="DICOM Modality the images show (CT, MR, CR...)"
    )
    enrol.add_argument(
        "--body-part", metavar="TERM", help="BodyPartExamined defined term (CHEST, HEAD...)"
    )
    enrol.add_argument(
        "--laterality", metavar="SIDE", choices=["R", "L", "B", "U"], help="R, L, B or U"
    )
    enrol.add_argument("--view", metavar="VIEW", help="view label, e.g. PA, lateral, axial")
    enrol.set_defaults(handler=studies_enrol)
    listed = sub.add_parser("list", help="counts per label and model version, newest images")
    listed.add_argument(
        "--source", metavar="SOURCE", choices=["reference", "archive"],
        help="reference or archive (default: both)",
    )  # fmt: skip
    listed.add_argument("--limit", metavar="N", type=int, default=20, help="newest images shown")
    listed.set_defaults(handler=studies_list)
    again = sub.add_parser("reembed", help="embed stored images under the current model versions")
    again.add_argument(
        "--model", metavar="NAME", help="one model of the registry (default: the configured ones)"
    )
    again.set_defaults(handler=studies_reembed)
    rm = sub.add_parser("remove", help="delete a reference study's images")
    rm.add_argument("study_uid", metavar="STUDY_UID", help="the reference's Study Instance UID")
    rm.add_argument("--archive", action="store_true", help="also its archive history")
    rm.set_defaults(handler=studies_remove)
