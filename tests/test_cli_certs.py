"""``blo-certs`` as an operator meets it: refusals instead of tracebacks (issue 9.14, 9.16)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from certs import Pki
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
