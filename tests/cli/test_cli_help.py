"""`verity --help` helps: every command and option says what it is for, in one line."""

from __future__ import annotations

import argparse
import re

from service.cli.main import build_parser
from tests.cli.conftest import run_verity
from tests.conftest import REPO_ROOT


def _walk(parser: argparse.ArgumentParser, path: str = "verity"):
    """(command path, parser) for the root and every subcommand, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}")


def _subcommand_help(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            out.update({name: helps.get(name) for name in action.choices})
    return out


def test_every_command_and_option_has_one_line_help():
    missing: list[str] = []
    for path, parser in _walk(build_parser()):
        for name, text in _subcommand_help(parser).items():
            if not text or text == argparse.SUPPRESS or "\n" in text:
                missing.append(f"{path} {name}")
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            label = f"{path} {'/'.join(action.option_strings) or action.dest}"
            if not action.help or action.help == argparse.SUPPRESS or "\n" in action.help:
                missing.append(label)
            if isinstance(action, argparse._AppendAction) and "repeat" not in (action.help or ""):
                missing.append(f"{label} (repeatable: say so)")
    assert missing == []


def test_the_walk_sees_every_command():
    paths = {path for path, _ in _walk(build_parser())}
    for command in ("verity verify-pill", "verity library import", "verity evaluate pills",
                    "verity outbox retry", "verity db status", "verity serve"):  # fmt: skip
        assert command in paths


def test_readme_commands_use_the_parser_metavars():
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    for path, parser in _walk(build_parser()):
        for action in parser._actions:
            if action.nargs == 0 or isinstance(action, argparse._SubParsersAction):
                continue
            name = action.metavar or (action.dest.upper() if action.option_strings else action.dest)
            if action.option_strings:
                shown = re.findall(rf"`{path} [^`]*{action.option_strings[-1]} (\w+)", table)
            else:
                shown = re.findall(rf"`{path} (\w+)", table)
            assert shown, f"{path} {action.option_strings or action.dest} is not in the README"
            assert set(shown) == {name}, (path, shown, name)


def test_verify_pill_help_says_what_a_dry_run_records():
    proc = run_verity(["verify-pill", "--help"])
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "FILE_OR_ID" in text and "repeat for several photos" in text
    assert "a file is a dry run: nothing is recorded in the audit table" in text.lower()
    readme = " ".join((REPO_ROOT / "README.md").read_text().split())
    assert "nothing is recorded in the audit table" in readme


def test_every_command_runs_a_function():
    """Each leaf command's handler is a function taking (args, settings), not a parser object
    (a command group module that names its parser like its handler would hand over the parser)."""
    import inspect

    leaves = [
        (path, p)
        for path, p in _walk(build_parser())
        if not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)
    ]
    assert len(leaves) >= 10
    for path, p in leaves:
        handler = p.get_default("handler")
        assert inspect.isfunction(handler), (path, handler)
        assert list(inspect.signature(handler).parameters) == ["args", "settings"], path
