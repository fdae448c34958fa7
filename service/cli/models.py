"""`verity models compare {pills|studies} DIR`: each model cascade over the evaluation protocol,
side by side (accuracy, latency, peak memory, CPU per 1,000 images)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from service.config import Settings

STUDY_COLUMNS = [
    ("CONTENT", "recall_CONTENT_MISMATCH"), ("DUPLICATE", "recall_DUPLICATE_IMAGE"),
    ("clean_pass", "clean_pass_rate"), ("exact", "exact_rate"), ("uncertain", "uncertain_rate"),
]  # fmt: skip
PILL_COLUMNS = [
    ("top1", "top1"), ("top5", "top5"), ("TAR", "true_accept_rate"),
    ("FAR", "false_accept_rate"), ("uncertain", "uncertain_rate"),
]  # fmt: skip
COST_COLUMNS = [
    ("p50_ms", "p50_ms"), ("p95_ms", "p95_ms"), ("peak_MB", "peak_mb"),
    ("CPU_s/1k_img", "cpu_s_per_1000_images"), ("errors", "errors"),
]  # fmt: skip


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value <= 1 and not value.is_integer():
        return f"{value:.3f}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def table(kind: str, rows: list[dict[str, Any]]) -> str:
    """One line per cascade, the compared figures as columns."""
    columns = [*(STUDY_COLUMNS if kind == "studies" else PILL_COLUMNS), *COST_COLUMNS]
    names = [" + ".join(r["cascade"]) for r in rows]
    first = max([len("cascade"), *map(len, names)])
    widths = [max(len(h), 6) for h, _ in columns]
    lines = [
        " ".join(
            [
                f"{'cascade':<{first}}",
                *(f"{h:>{w}}" for (h, _), w in zip(columns, widths, strict=True)),
            ]
        )
    ]
    for name, row in zip(names, rows, strict=True):
        cells = (f"{_cell(row.get(k)):>{w}}" for (_, k), w in zip(columns, widths, strict=True))
        lines.append(" ".join([f"{name:<{first}}", *cells]))
    return "\n".join(lines)


def models_compare(args: argparse.Namespace, settings: Settings) -> int:
    """Print the comparison table (or one JSON object with a row per cascade)."""
    from service.evaluation.compare import compare, default_cascades

    cascades = [[m.strip() for m in spec.split(",") if m.strip()] for spec in args.models or []]
    cascades = cascades or default_cascades(args.kind, settings)
    rows = compare(args.kind, Path(args.dataset), cascades, settings, timeout_s=args.timeout_s)
    if args.json:
        print(json.dumps({"kind": args.kind, "dataset": args.dataset, "rows": rows}))
        return 0
    print(table(args.kind, rows))
    if args.kind == "studies":
        for name, row in ((" + ".join(r["cascade"]), r) for r in rows):
            shares = ", ".join(f"{t} {s:.2f}" for t, s in row.get("tier_share", {}).items())
            print(f"tiers reached ({name}): {shares or '-'}")
    print(f"CPU and peak memory: the whole protocol in a fresh process (model load, enrolment,"
          f" checks), per dataset image ({rows[0]['images'] if rows else 0} images)")  # fmt: skip
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from service.evaluation.compare import DEFAULT_TIMEOUT_S

    models = sub.add_parser("models", help="compare models on a labelled dataset")
    models_sub = models.add_subparsers(dest="models_command", required=True, metavar="COMMAND")
    cmp = models_sub.add_parser(
        "compare", help="each model cascade over an evaluation protocol, side by side"
    )
    kinds = cmp.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind, what in (("pills", "labels.csv + product folders"),
                       ("studies", "cases.csv, archive/, cases")):  # fmt: skip
        one = kinds.add_parser(kind, help=f"the {kind} protocol of the dataset README, per cascade")
        one.add_argument("dataset", metavar="DATASET_DIR", help=f"a {kind} dataset folder ({what})")
        one.add_argument(
            "--models", action="append", metavar="MODELS",
            help="a cascade: model card ids separated by commas, first first (repeat for more"
            " cascades; pills: at most one head among them); default: each configured model"
            " alone and the configured cascade",
        )  # fmt: skip
        one.add_argument(
            "--timeout-s", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
            help="give up on one cascade's run after this many seconds",
        )  # fmt: skip
        one.add_argument("--json", action="store_true", help="print one JSON object")
        one.set_defaults(handler=models_compare)
