"""The repository runs on its own: nothing reads the team's design folder that sits
beside the checkout (a user's clone has none).

The reference alert used to live in that folder's fixtures, so ``pytest`` failed on
a fresh machine. It is now ``bench/fixtures/reference-alert.json``. This test greps
every file that runs or that a user follows (code, configuration, scripts, the
README) for a path into that folder, spelled as a string or built from path parts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
#: The folder's name in any spelling: a relative path, its fixtures folder, or a
#: quoted path part joined with ``/`` (how tests/netsim.py used to build it).
# Spelled in parts, so this guard is not itself a hit for a grep of the repository.
_DIR = "sha" + "red"
OUTSIDE = re.compile(rf"\.\./{_DIR}|{_DIR}/fixtures|[\"']{_DIR}[\"']")
#: docs/design.md names the agreed brief it was written from; a citation, not a read.
CITATIONS = {("docs/design.md", f"../{_DIR}/DESIGN.md")}


def scanned() -> list[Path]:
    """Every .py, .md, .toml and .sh file of the repository, and .ci/run."""
    files = [ROOT / ".ci" / "run"]
    for path in sorted(ROOT.rglob("*")):
        if SKIP_DIRS.intersection(path.relative_to(ROOT).parts) or not path.is_file():
            continue
        if path.suffix in {".py", ".md", ".toml", ".sh"}:
            files.append(path)
    return files


def offending_lines(path: Path) -> list[str]:
    rel = path.relative_to(ROOT).as_posix()
    found = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        for match in OUTSIDE.finditer(line):
            if not any(rel == f and cite in line for f, cite in CITATIONS):
                found.append(f"{rel}:{number}: {match.group(0)!r} in {line.strip()}")
    return found


def test_nothing_reads_outside_the_repository() -> None:
    files = scanned()
    assert ROOT / "README.md" in files
    assert ROOT / "tests" / "netsim.py" in files
    this = Path(__file__).resolve()
    found = [hit for path in files if path != this for hit in offending_lines(path)]
    assert not found, f"paths outside the repository (a clone has no ../{_DIR}):\n" + "\n".join(
        found
    )


def test_the_grep_sees_every_spelling() -> None:
    """Positive control: each spelling the repo once used is caught."""
    spellings = [
        f'REFERENCE = Path(__file__).resolve().parents[2] / "{_DIR}" / "fixtures" / "x.json"',
        f"like `../{_DIR}/fixtures/reference-alert.json`",
        f"cat ../{_DIR}/DESIGN.md",
    ]
    for spelling in spellings:
        assert OUTSIDE.search(spelling), spelling
    assert not OUTSIDE.search("one SQLite file, shared by the running client")


def test_the_reference_alert_is_in_the_repository() -> None:
    """Same fields and texts as the one the 402-byte figure was measured on."""
    doc = json.loads((ROOT / "bench" / "fixtures" / "reference-alert.json").read_text("utf-8"))
    assert doc["sender"] == "kh-nacd"
    assert doc["scope"] == "all"
    assert set(doc["text"]) == {"en", "km"}
    assert doc["text"]["en"]["headline"].startswith("1.9 kg methamphetamine")
