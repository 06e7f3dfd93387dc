"""blo-trends end to end on a simulated history of real signed incidents; the summary's size."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from certs import Pki
from schemas import Incident, Lang, Receiver, open_envelope, unpack_model
from schemas.codec import pack
from trends.cli import main
from trends.detectors import Signal
from trends.errors import SourceError, SummaryError
from trends.report import analyse
from trends.simulate import Truth
from trends.sources import read_archive, read_inbox
from trends.summary import MAX_SUMMARY, TrendSummary, summary_for


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "sim"
    assert (
        main(
            [
                "simulate",
                "--offices",
                "7",
                "--years",
                "2.2",
                "--seed",
                "5",
                "--out",
                str(out),
                "--end",
                "2026-06-29",
            ]
        )
        == 0
    )
    return out


def test_simulate_writes_signed_incidents_and_a_truth_file(sim: Path) -> None:
    truth = Truth.loads((sim / "truth.json").read_text())
    assert truth.events
    assert len(truth.offices) == 7
    archive = read_archive(sim / "archive.sqlite3")
    kh = read_inbox(sim / "data" / "kh-nacd" / "inbox.sqlite3")
    assert archive.unreadable == 0
    assert len(kh.items) > 500
    assert {s for s, _ in kh.items} == {"kh-blo-bavet", "kh-blo-poipet"}
    assert archive.regions["kh-blo-bavet"] == "kh-vn-bavet"
    # Every stored incident verifies against Cambodia's PKI, as an HQ checks it.
    import sqlite3

    now = datetime(2026, 7, 1, tzinfo=UTC)
    receiver = Receiver(Pki(sim / "pki" / "kh").trust_store(now))
    db = sqlite3.connect(sim / "data" / "kh-nacd" / "inbox.sqlite3")
    rows = db.execute("SELECT topic, data FROM messages LIMIT 50").fetchall()
    for topic, data in rows:
        result = receiver.receive(topic, data, now)
        assert result.ok, result
        assert isinstance(result.body, Incident)
    assert open_envelope(rows[0][1]).header.sender.startswith("kh-blo-")


def test_table_json_khmer_and_plots(
    sim: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    inbox = ["--data", str(sim / "data" / "kh-nacd"), "--week", "2026-W20"]
    assert main(inbox) == 0
    out = capsys.readouterr().out
    assert "Levels per crossing, week 2026-W20" in out
    assert "Bavet" in out
    assert main(["--archive", str(sim / "archive.sqlite3"), "--json", "--week", "2026-W20"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["week"] == "2026-W20"
    assert {lv["country"] for lv in doc["levels"]} == {"kh", "th", "la", "vn", "mm", "cn"}
    assert all(set(s["text"]) == {"en", "km"} for s in doc["signals"])
    meth = [x for x in doc["series"] if x["substance"] == "methamphetamine" and x["this_week"]]
    assert meth
    assert all(x["unit"] == "kg" and x["quantity"] > 0 for x in meth)
    assert main([*inbox, "--lang", "km"]) == 0
    km = capsys.readouterr().out
    assert "កម្រិតតាមច្រកព្រំដែន" in km
    assert "២០២៦" in km
    plots = tmp_path / "plots"
    assert main(["--archive", str(sim / "archive.sqlite3"), "--plots", str(plots)]) == 0
    names = sorted(p.name for p in plots.glob("*.png"))
    assert "heatmap.png" in names
    assert "crossings-kh.png" in names
    assert all(p.stat().st_size > 10_000 for p in plots.glob("*.png"))


def test_signals_show_first_in_the_table(sim: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = Truth.loads((sim / "truth.json").read_text())
    event = next(e for e in truth.events if e.kind == "outbreak")
    from trends.weeks import label

    weeks = [label(event.start_week + k) for k in range(3)]
    found = []
    for week in weeks:
        assert main(["--archive", str(sim / "archive.sqlite3"), "--week", week]) == 0
        out = capsys.readouterr().out
        found.append(
            out.index("Active signals") < out.index("Levels per crossing")
            if "Active signals" in out
            else False
        )
    assert any(found)


def test_errors_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--archive", str(tmp_path / "none.sqlite3")]) == 1
    assert "none.sqlite3: no such file" in capsys.readouterr().err
    (tmp_path / "junk.sqlite3").write_bytes(b"not a database at all" * 100)
    with pytest.raises(SourceError, match=r"junk\.sqlite3 cannot be read"):
        read_archive(tmp_path / "junk.sqlite3")
    assert main([]) == 1
    assert "--bundle" in capsys.readouterr().err


def test_summary_fits_one_kilobyte_in_english_and_khmer(sim: Path) -> None:
    analysis = analyse(read_archive(sim / "archive.sqlite3"))
    for level in analysis.levels:
        summary = summary_for(analysis, level.office)
        wire = pack(summary)
        assert len(wire) <= MAX_SUMMARY
        assert unpack_model(TrendSummary, wire, max_len=MAX_SUMMARY) == summary
        assert set(summary.headline) == {Lang.EN, Lang.KM}
    # Many signals: trimmed to the budget, own crossing's first.
    from dataclasses import replace

    from trends.detectors import Detector, Signal

    key = next(k for k in analysis.counts.keys if k.office == "kh-blo-bavet")
    many = [Signal(Detector.POISSON, key, analysis.week, 9.0 + i, 1.2, 0.9, 1e-5) for i in range(8)]
    busy = replace(analysis, signals=many)
    summary = summary_for(busy, "kh-blo-bavet")
    assert 0 < len(summary.signals) <= 8
    assert len(pack(summary)) <= MAX_SUMMARY
    assert summary.signals[0].place == "Bavet"
    with pytest.raises(SummaryError, match="kh-blo-nowhere"):
        summary_for(analysis, "kh-blo-nowhere")
    with pytest.raises(SummaryError, match=r"over the 40-byte budget"):
        summary_for(analysis, "kh-blo-bavet", limit=40)


def test_simulate_refuses_what_it_cannot_do(
    tmp_path: Path, sim: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from schemas import BloError
    from trends import SimulateError, TrendsError

    assert issubclass(TrendsError, BloError)
    assert main(["simulate", "--offices", "75", "--out", str(tmp_path / "x")]) == 1
    assert "1 to 74 offices" in capsys.readouterr().err
    assert main(["simulate", "--offices", "2", "--years", "1", "--out", str(sim)]) == 1
    assert "is not empty" in capsys.readouterr().err
    from trends.simulate import history

    with pytest.raises(SimulateError, match=r"0\.5 to 10 years"):
        history(3, 0.1)


def same_signals(a: list[Signal], b: list[Signal]) -> bool:
    """Equal, but for the rounding of rolling sums over windows of another length."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert (x.detector, x.key, x.week, x.observed, x.baseline_n) == (
            y.detector,
            y.key,
            y.week,
            y.observed,
            y.baseline_n,
        )
        assert x.expected == pytest.approx(y.expected, rel=1e-9, abs=1e-12)
        assert x.spread == pytest.approx(y.spread, rel=1e-6, abs=1e-9)
        assert (x.p is None) == (y.p is None)
        assert x.p is None or x.p == pytest.approx(y.p, rel=1e-6, abs=1e-12)
    return True


def test_reading_only_the_baselines_weeks_changes_nothing(sim: Path) -> None:
    from trends.detectors import Detector, Settings
    from trends.report import read_since
    from trends.weeks import week_of

    path = sim / "archive.sqlite3"
    full = read_archive(path)
    for when in ("2026-06-01", "2026-06-29", "2026-03-02"):
        week = week_of(datetime.fromisoformat(when).replace(tzinfo=UTC))
        part = read_archive(path, read_since(week))
        assert len(part.items) < len(full.items) or when == "2026-03-02"
        a, b = analyse(full, week), analyse(part, week)
        assert a.signals == b.signals
        assert a.levels == b.levels
        # With limits so loose that every detector speaks, its numbers agree too.
        loose = Settings(
            ears_limit=-9,
            poisson_alpha=1.0,
            glm_alpha=1.0,
            min_count=0,
            spike_z=-9,
            spike_factor=0.01,
        )
        part = read_archive(path, read_since(week, loose))
        a, b = analyse(full, week, loose), analyse(part, week, loose)
        wanted = {Detector.QUANTITY} | ({Detector.GLM} if when != "2026-03-02" else set())
        assert {s.detector for s in a.signals} >= wanted
        assert same_signals(a.signals, b.signals)


def test_a_damaged_row_is_counted_and_shown(
    sim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil
    import sqlite3

    copy = tmp_path / "archive.sqlite3"
    shutil.copy(sim / "archive.sqlite3", copy)
    db = sqlite3.connect(copy)
    row = db.execute(
        "SELECT sender, epoch, kind, scope, topic, issued, received, data FROM envelopes "
        "WHERE kind = 2 ORDER BY issued DESC LIMIT 1"  # the newest incident
    ).fetchone()
    sender, epoch, kind, scope, topic, issued, received, data = row
    db.execute(
        "INSERT INTO envelopes VALUES (?,?,?,?,?,?,?,?,?,?)",
        (sender, epoch, 10**9, b"x" * 16, kind, scope, topic, issued, received, data[:40]),
    )
    db.commit()
    db.close()
    assert read_archive(copy).unreadable == 1
    assert main(["--archive", str(copy)]) == 0
    assert "1 stored messages could not be decoded" in capsys.readouterr().out


def test_plots_with_no_complete_week_write_nothing_and_say_so(tmp_path: Path) -> None:
    """No series yet (every incident in the current week): no PNG, no crash."""
    from trends.plots import plot_all
    from trends.report import analyse

    assert plot_all(analyse([]), tmp_path / "plots") == []
    assert not (tmp_path / "plots").exists()
