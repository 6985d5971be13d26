"""The report's documents from known data: the PDF (made by WeasyPrint from the UI's templates)
rendered to a picture with pdftoppm and looked at, its text read back with pdftotext, and the
CSV read back as a spreadsheet would, formula injection included."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from PIL import Image

from central import sites
from central.reports import build, csv_export, documents
from central.reports.period import Period
from tests import harness, report_data

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts" / "reports"
BAR_BLUE = (0x2F, 0x6F, 0xB0)
PEAK_RED = (0xC0, 0x39, 0x2B)


@pytest.fixture(scope="module")
def result(pg_admin_url: str, central_template: str) -> Iterator[dict[str, Any]]:
    with (
        harness.fresh_database(pg_admin_url, central_template) as url,
        psycopg.connect(url) as conn,
    ):
        ids = report_data.load(conn)
        # a site whose name a spreadsheet would run as a formula
        sites.create_site(conn, ids["tenant"], '=HYPERLINK("http://x")', "cli")
        conn.commit()
        yield build.build(
            conn,
            ids["tenant"],
            None,
            period=Period.of("month", date(2026, 10, 1), "Europe/Paris"),
            demand=timedelta(minutes=15),
        )


def _near(pixel: Any, colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def test_the_pdf_shows_the_tables_and_charts_on_page_one(
    result: dict[str, Any], tmp_path: Path
) -> None:
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm is not installed (apt-get install poppler-utils)")
    pdf = documents.pdf(result)
    assert pdf.startswith(b"%PDF-")
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", str(path), str(tmp_path / "page")],
        check=True,
    )
    png = next(tmp_path.glob("page*.png"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(png, ARTIFACTS / "report-page1.png")
    image = Image.open(png).convert("RGB")
    width, height = image.size
    assert width < height  # A4 portrait
    colours = image.getcolors(maxcolors=width * height) or []
    # the daily bars are drawn in the bar colour: a good share of the page is that blue
    blue = sum(n for n, c in colours if _near(c, BAR_BLUE, 30))
    assert blue > 0.005 * width * height, f"{blue} bar-blue pixels"
    # the load curve's peak marker
    assert any(_near(c, PEAK_RED, 30) for _, c in colours)
    # the tables, read back as text from page 1
    text = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", "-layout", str(path), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "Energy report · October 2026" in text
    assert "Sites by consumption" in text
    assert "Plant A" in text and "27,959.4" in text  # the site's energy in the table
    assert "127.5" in text  # its peak demand
    assert "Daily consumption" in text and "Load curve" in text
    assert "25 Oct 2026 02:30 (UTC+01:00)" in text
    # the whole document has the meters, resets and the gap list
    everything = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout
    (ARTIFACTS / "report.txt").write_text(everything)
    assert "counter dropped at 20 Oct 2026 12:30 (UTC+02:00)" in everything
    assert re.search(
        r"5 Oct 2026 08:00 \(UTC\+02:00\)\s+5 Oct 2026 10:00 \(UTC\+02:00\)\s+2\s*h\n", everything
    )


def test_the_csv_has_every_figure_and_defuses_formulas(result: dict[str, Any]) -> None:
    text = csv_export.render(result).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    total = next(r for r in rows if r["record"] == "total")
    assert float(total["energy_kwh"]) == 22372.0 + 5587.375
    assert float(total["previous_energy_kwh"]) == 16200
    site = next(r for r in rows if r["record"] == "site" and r["site"] == "Plant A")
    assert float(site["peak_kw"]) == 127.5
    assert site["peak_start"] == "2026-10-25T02:30:00+01:00"
    assert site["resets"] == "2"
    meter = next(r for r in rows if r["record"] == "meter" and r["meter"] == "main")
    assert float(meter["energy_kwh"]) == 22372.0
    days = [r for r in rows if r["record"] == "day" and r["site"] == "Plant A"]
    assert len(days) == 31
    gap = next(r for r in rows if r["record"] == "gap" and r["point"] == "energy_kwh")
    assert (gap["gap_start"], gap["gap_minutes"]) == ("2026-10-05T08:00:00+02:00", "120")
    # the hostile site name is text, not a formula; numbers stay numbers
    names = {r["site"] for r in rows if r["record"] == "site"}
    assert '\'=HYPERLINK("http://x")' in names
    assert not any(
        v.startswith(csv_export.FORMULA_START) and not _number(v) for r in rows for v in r.values()
    )


def _number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
