"""``blo-certs`` as an operator meets it: refusals instead of tracebacks (issue 9.14, 9.16)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from certs import EnrolmentBundle, Pki
from certs.cli import main


def test_import_root_refuses_a_country_that_is_a_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A forged foreign folder whose root/country climbs out of roots/ writes nothing."""
    now = datetime.now(UTC)
    Pki(tmp_path / "kh").init("kh", "kh-nacd", now)
    Pki(tmp_path / "vn").init("vn", "vn-sodc", now)
    # Positive control: the honest folder is imported.
    assert main(["import-root", "--dir", str(tmp_path / "kh"), str(tmp_path / "vn")]) == 0
    assert (tmp_path / "kh" / "roots" / "vn.pub").exists()
    (tmp_path / "vn" / "root" / "country").write_text("../../escaped")
    assert main(["import-root", "--dir", str(tmp_path / "kh"), str(tmp_path / "vn")]) == 1
    assert "not a two-letter country code" in capsys.readouterr().err
    assert not list(tmp_path.rglob("escaped*"))


def test_hq_bundle_carries_the_offices_issued_after_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """blo-pub judges audiences by the keysets its node holds (issue 9.12): HQ's bundle,
    written at init, is refreshed as offices are issued."""
    pki = str(tmp_path / "pki")
    assert main(["init", "--dir", pki, "--country", "kh", "--hq", "kh-nacd"]) == 0
    issue = ["issue", "--dir", pki, "kh-blo-bavet", "--role", "blo", "--region", "kh-vn-bavet"]
    assert main(issue) == 0
    assert "kh-nacd's bundle refreshed" in capsys.readouterr().out
    hq = EnrolmentBundle.load(tmp_path / "pki" / "bundles" / "kh-nacd.json")
    assert hq.trust_store(datetime.now(UTC)).node("kh-blo-bavet") is not None


def test_list_keeps_its_right_border_at_80_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    pki = str(tmp_path / "pki")
    assert main(["init", "--dir", pki, "--country", "kh", "--hq", "kh-nacd"]) == 0
    long = ["--region", "kh-vn-trapeangphlong", "--region", "kh-vn-bavet"]
    assert main(["issue", "--dir", pki, "kh-blo-trapeangphlong", "--role", "blo", *long]) == 0
    capsys.readouterr()
    assert main(["list", "--dir", pki]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line[:1] in "┏┃┡│└"]
    assert lines
    assert all(len(line) == len(lines[0]) <= 80 for line in lines), "\n".join(lines)
    assert all(line[-1] in "┓┃┩│┘" for line in lines), "\n".join(lines)
    # Readable, not only boxed: headers and a region name are not chopped into syllables.
    for word in ("regions", "counterparts", "kh-vn-bavet"):
        assert any(word in line for line in lines), "\n".join(lines)
