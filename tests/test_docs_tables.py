"""Every table in docs/ under a `graphrec report` of archived run folders (docs/runs/, written by `graphrec
archive`) is exactly what that command prints from them today: no such table is typed by hand or left stale.
`python tests/test_docs_tables.py` rewrites those tables (after adding runs to docs/runs, or a `| model |` line as
the placeholder of a new table)."""
from __future__ import annotations

import contextlib
import io
import os
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


def printed(command: str) -> str:
    """What `graphrec <command>` prints, run from the repository root."""
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(shlex.split(command)) == 0, f"graphrec {command} failed"
    return out.getvalue().strip()


@pytest.mark.parametrize("doc, command, table", TABLES, ids=[f"{d}:{c[:60]}" for d, c, _ in TABLES])
def test_a_docs_table_is_what_graphrec_report_prints(doc, command, table, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert printed(command) == table, f"{doc}: regenerate the table under `graphrec {command}`"


def rewrite_tables() -> None:
    """Replace each table under a report of docs/runs/ in docs/*.md with what its command prints now."""
    os.chdir(ROOT)
    for doc, command, table in TABLES:
        path = ROOT / "docs" / doc
        marker = f"    graphrec {command}\n\n"
        path.write_text(path.read_text().replace(marker + table + "\n", marker + printed(command) + "\n"))


if __name__ == "__main__":
    rewrite_tables()
