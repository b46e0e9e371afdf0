"""Every case of tests/bad_inputs/cases.yaml through the CLI: one clear line, the right exit code, nothing written."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

import pytest
import yaml

from graphrec.cli import main
from graphrec.runs import RunLock

import tiny_models  # noqa: F401  (registers the tests' tiny models, which some cases name)

CASES_DIR = Path(__file__).parent / "bad_inputs"
CASES = yaml.safe_load((CASES_DIR / "cases.yaml").read_text())
SHARED_DATA = Path(os.environ.get("GRAPHREC_DATA")
                   or Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under root with its size and mtime."""
    out = {}
    for path in sorted(root.rglob("*")):
        stat = path.stat()
        out[str(path.relative_to(root))] = (stat.st_size if path.is_file() else -1, stat.st_mtime_ns)
    return out


def _set_key(data: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        data = data[part]
    data[last] = value


def _setup(spec: dict, workdir: Path, capsys, monkeypatch) -> Optional[RunLock]:
    """Train a tiny run into run/ and damage it as the case asks (truncate, delete, set keys, write files); set
    environment variables (`env`: e.g. the RANK / WORLD_SIZE a torchrun launch sets); lock a folder as a process
    working in it would (`lock`: the lock returned, held while the case runs)."""
    if "train" in spec:
        assert main(["train", spec["train"], "--set", "output_dir=setup_runs"]) == 0
        (run,) = (workdir / "setup_runs").iterdir()
        run.rename(workdir / "run")
        (workdir / "setup_runs").rmdir()
    for rel in spec.get("delete", []):
        (workdir / rel).unlink()
    if "truncate" in spec:
        target = workdir / spec["truncate"]
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 3])
    for rel, keys in spec.get("set", {}).items():
        data = yaml.safe_load((workdir / rel).read_text())
        for dotted, value in keys.items():
            _set_key(data, dotted, value)
        (workdir / rel).write_text(yaml.safe_dump(data, sort_keys=False))
    for rel, text in spec.get("write", {}).items():
        (workdir / rel).write_text(text)
    for key, value in spec.get("env", {}).items():
        monkeypatch.setenv(key, str(value))
    capsys.readouterr()
    return RunLock(workdir / spec["lock"]) if "lock" in spec else None


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("GRAPHREC_DATA", str(SHARED_DATA))
    monkeypatch.setenv("WANDB_MODE", "disabled")


def test_corpus_is_large_enough():
    errors = [c for c in CASES if c["exit"] != 0]
    assert len(errors) >= 30 and len(CASES) - len(errors) >= 4
    assert len({c["name"] for c in CASES}) == len(CASES)
    assert {c["name"] for c in CASES} == {p.name for p in CASES_DIR.iterdir() if p.is_dir()}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_bad_input(case, tmp_path, monkeypatch, capsys):
    workdir = tmp_path / case["name"]
    shutil.copytree(CASES_DIR / case["name"], workdir)
    monkeypatch.chdir(workdir)
    held = _setup(case["setup"], workdir, capsys, monkeypatch) if case.get("setup") else None
    before = _snapshot(workdir)

    code = main([str(a) for a in case["args"]])
    out, err = capsys.readouterr()
    if held is not None:
        held.release()

    assert "Traceback" not in out + err
    assert code == case["exit"], err
    wanted = case["message"] if isinstance(case["message"], list) else [case["message"]]
    lines = [line for line in err.splitlines() if line.strip()]
    if case["exit"] != 0:
        errors = [line for line in lines if line.startswith("graphrec: error: ")]
        assert len(errors) == 1, err
        assert errors[0].isprintable(), repr(errors[0])  # no raw NUL or control character from the input
        assert all(line.startswith(("graphrec: error: ", "graphrec: warning: ")) for line in lines), err
        for text in wanted:
            assert text in errors[0], f"{text!r} not in {errors[0]!r}"
        assert out == ""
        assert _snapshot(workdir) == before, "an error must write nothing"
    else:
        warned = [line for line in lines if line.startswith("graphrec: warning: ")]
        assert any(all(text in line for text in wanted) for line in warned), err
        assert not any(line.startswith("graphrec: error") for line in lines)
        runs = [p for p in (workdir / "runs").iterdir()]
        assert len(runs) == 1 and (runs[0] / "metrics.json").is_file()
        recorded = yaml.safe_load((runs[0] / "warnings.json").read_text())
        for kind, count in case["warnings"].items():
            assert recorded[kind]["count"] == count, recorded
