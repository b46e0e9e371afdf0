"""Every table in docs/ under a `graphrec report` of archived run folders (docs/runs/, written by `graphrec
archive`) is exactly what that command prints from them today: no such table is typed by hand or left stale.
`python tests/test_docs_tables.py` rewrites those tables (after adding runs to docs/runs, or a `| model |` line as
the placeholder of a new table)."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from graphrec.cli import main

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "    graphrec report docs/runs/"


def archived_tables() -> list[tuple[str, str, str]]:
    """(doc file, report arguments, the markdown table under them) for each report of docs/runs/ in docs/*.md."""
    found = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        lines = doc.read_text().splitlines()
        for i, line in enumerate(lines):
            if not line.startswith(PREFIX):
                continue
            rest = lines[i + 1:]
            while rest and not rest[0].strip():
                rest = rest[1:]
            table = []
            while rest and rest[0].startswith("|"):
                table.append(rest.pop(0))
            if table:  # a report that prints a table here (not e.g. `--best`, which writes a config)
                found.append((doc.name, line.strip()[len("graphrec "):], "\n".join(table)))
    return found


TABLES = archived_tables()


def test_the_archive_holds_results_only():
    archive = ROOT / "docs" / "runs"
    assert TABLES and archive.is_dir()
    assert not list(archive.rglob("*.pt")), "checkpoints do not belong in docs/runs (use graphrec archive)"


@pytest.mark.parametrize("doc, command, table", TABLES, ids=[f"{d}:{c[:60]}" for d, c, _ in TABLES])
def test_a_docs_table_is_what_graphrec_report_prints(doc, command, table, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(shlex.split(command)) == 0
    assert capsys.readouterr().out.strip() == table, f"{doc}: regenerate the table under `graphrec {command}`"


def rewrite_tables() -> None:
    """Replace each table under a report of docs/runs/ in docs/*.md with what the command prints now."""
    import subprocess
    import sys
    for doc in sorted((ROOT / "docs").glob("*.md")):
        text = doc.read_text()
        for _, command, table in archived_tables():
            printed = subprocess.run([sys.executable, "-m", "graphrec.cli", *shlex.split(command)], cwd=ROOT,
                                     check=True, capture_output=True, text=True).stdout.strip()
            marker = f"    graphrec {command}\n\n"
            text = text.replace(marker + table + "\n", marker + printed + "\n")
        doc.write_text(text)


if __name__ == "__main__":
    rewrite_tables()
