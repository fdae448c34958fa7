"""The image's invariants, read from a parsed Containerfile (dockerfile-parse), so that a test
can show each rule fails on a Containerfile that breaks it."""

from __future__ import annotations

import fnmatch
import io
import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from dockerfile_parse import DockerfileParser

# Compilers, build systems, package installers and fetchers: none belongs in the final stage.
BUILD_TOOLS = re.compile(
    r"^(gcc|g\+\+|cc|clang|make|cmake|ninja|build-essential|autoconf|automake|libtool|"
    r"pkg-config|git|curl|wget|python3-pip|python3-dev|.+-dev)(:\w+)?$"
)
INSTALLERS = re.compile(r"\b(pip3?|python3? -m pip|uv|poetry|conda) install\b")
WRITABLE = {"/tmp", "/var/lib/verity"}


@dataclass
class Stage:
    name: str | None
    base: str
    instructions: list[dict[str, Any]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [i["value"] for i in self.instructions if i["instruction"] == instruction]


def stages(text: str) -> list[Stage]:
    """The build stages in order, each with its instructions (comments dropped)."""
    parsed = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    found: list[Stage] = []
    for ins in parsed.structure:
        if ins["instruction"] == "FROM":
            words = ins["value"].split()
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else None
            found.append(Stage(name, words[0]))
        elif found and ins["instruction"] != "COMMENT":
            found[-1].instructions.append(ins)
    return found


def _env(values: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for value in values:
        env.update(dict(part.split("=", 1) for part in shlex.split(value) if "=" in part))
    return env


def _apt_packages(run: str) -> list[str]:
    """Package names given to `apt-get install` / `apt install` in one RUN command."""
    names: list[str] = []
    for m in re.finditer(r"\bapt(?:-get)? install\b([^;&|]*)", run):
        names += [w for w in m.group(1).split() if not w.startswith("-")]
    return names


def _user_is_root(user: str) -> bool:
    name = user.split(":")[0]
    return name in ("root", "0", "")


def problems(text: str) -> list[str]:
    """Every broken invariant of the image, in words; empty when the Containerfile is sound."""
    found = stages(text)
    if len(found) < 2:
        return ["not multi-stage: the final stage must not be the one that builds"]
    final, builders = found[-1], found[:-1]
    out: list[str] = []
    users = final.all("USER")
    if not users or _user_is_root(users[-1]):
        out.append("the final stage runs as root (no USER, or USER root/0)")
    checks = final.all("HEALTHCHECK")
    if not checks or "/health/live" not in checks[-1] or "NONE" in checks[-1].split():
        out.append("no HEALTHCHECK on /health/live in the final stage")
    elif re.search(r"\b(curl|wget)\b", checks[-1]):
        out.append("HEALTHCHECK needs curl/wget, which the final stage must not have")
    for run in final.all("RUN"):
        tools = [p for p in _apt_packages(run) if BUILD_TOOLS.match(p)]
        if tools:
            out.append(f"build tools installed in the final stage: {tools}")
        if INSTALLERS.search(run):
            out.append("a package installer runs in the final stage")
    names = {s.name for s in builders}
    for copy in final.all("COPY"):
        source = re.search(r"--from=(\S+)", copy)
        if source is None:
            out.append(f"the final stage copies from the build context: {copy!r}")
        elif source.group(1) not in names:
            out.append(f"the final stage copies from an unknown stage: {copy!r}")
    if not any("BUNDLED_DIR" in run and ".onnx" in run for run in final.all("RUN")):
        out.append("the final stage does not check that the bundled models are in the image")
    if not any(
        re.search(r"\bCOPY\s+service\b", f"COPY {c}") for s in builders for c in s.all("COPY")
    ):
        out.append("the build stage does not copy service/ (the package and its models)")
    env = _env(final.all("ENV"))
    if env.get("VERITY_AUTH__ENABLED", "true").lower() in ("false", "0", "no", "off"):
        out.append("auth is turned off in the image")
    if env.get("VERITY_DATA_DIR") not in WRITABLE:
        out.append("VERITY_DATA_DIR is not one of the writable volumes")
    volumes = (
        set().union(*(json.loads(v) for v in final.all("VOLUME"))) if final.all("VOLUME") else set()
    )
    if not WRITABLE <= volumes:
        out.append(f"writable paths {sorted(WRITABLE - volumes)} are not declared as volumes")
    entry = final.all("ENTRYPOINT")
    command = final.all("CMD")
    if (
        not entry
        or json.loads(entry[-1]) != ["verity"]
        or not command
        or json.loads(command[-1]) != ["serve"]
    ):
        out.append("the default command is not `verity serve`")
    return out


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker/.containerignore semantics: the last matching pattern wins, `!` re-includes."""
    result = False
    for raw in patterns:
        neg = raw.startswith("!")
        pat = raw[1:] if neg else raw
        pat = pat.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, pat) for p in prefixes) or (
            pat.startswith("**/") and any(fnmatch.fnmatchcase(x, pat[3:]) for x in parts)
        ):
            result = not neg
    return result


def context_sources(text: str) -> list[str]:
    """Paths every COPY without --from reads from the build context."""
    sources: list[str] = []
    for stage in stages(text):
        for copy in stage.all("COPY"):
            words = [w for w in copy.split() if not w.startswith("--")]
            if "--from=" not in copy:
                sources += words[:-1]
    return sources
