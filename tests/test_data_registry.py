"""graphrec data list / fetch: checksums, atomic all-or-nothing folders, conversion, terms; offline mirrors only."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import pytest

from graphrec.config import build_config
from graphrec.data import catalog
from graphrec.data.catalog import CATALOG, DatasetEntry, baby_inter, fetch
from graphrec.data.field_loader import FIELD_FORMATS
from graphrec.errors import GraphrecError

TRAIN = b"0 1 2\n1 2\n"
TEST = b"0 3\n1 0\n"
SHARED = Path(os.environ.get("GRAPHREC_DATA") or Path(__file__).resolve().parents[1] / ".." / "shared" / "data")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A mirror folder with tiny/ (train.txt, test.txt) and a catalog entry 'tiny' with their real checksums."""
    folder = tmp_path / "mirror" / "tiny"
    folder.mkdir(parents=True)
    (folder / "train.txt").write_bytes(TRAIN)
    (folder / "test.txt").write_bytes(TEST)
    entry = DatasetEntry("tiny", "a tiny test set", "LightGCN txt", "2 users", "test terms", "https://example.org",
                         {"train.txt": sha(TRAIN), "test.txt": sha(TEST)}, url=None,
                         data={"path": "tiny", "format": "lightgcn", "files": {"train": "train.txt",
                                                                             "test": "test.txt"}})
    monkeypatch.setitem(CATALOG, "tiny", entry)
    return tmp_path / "mirror"


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


def test_fetch_from_a_mirror_folder_verifies_and_records_the_source(mirror, tmp_path):
    target = fetch("tiny", str(mirror), tmp_path / "data")
    assert (target / "train.txt").read_bytes() == TRAIN and (target / "test.txt").read_bytes() == TEST
    source = json.loads((target / "SOURCE.json").read_text())
    assert source["files"]["train.txt"] == {"from": str(mirror / "tiny" / "train.txt"), "sha256": sha(TRAIN),
                                            "bytes": len(TRAIN), "verified": True}
    assert source["data"]["format"] == "lightgcn" and source["command"].startswith("graphrec data fetch tiny")
    assert leftovers(tmp_path / "data") == ["tiny"]  # no temp folder left
    with pytest.raises(GraphrecError, match="already exists"):
        fetch("tiny", str(mirror), tmp_path / "data")


def test_fetch_downloads_from_a_url(mirror, tmp_path):
    target = fetch("tiny", mirror.as_uri(), tmp_path / "data")  # file:// goes through the download path
    assert (target / "test.txt").read_bytes() == TEST
    assert json.loads((target / "SOURCE.json").read_text())["files"]["test.txt"]["from"].startswith("file://")


def test_a_wrong_checksum_or_a_missing_file_is_one_line_and_writes_nothing(mirror, tmp_path):
    (mirror / "tiny" / "test.txt").write_bytes(TEST + b"2 2\n")
    with pytest.raises(GraphrecError) as err:
        fetch("tiny", str(mirror), tmp_path / "data")
    assert "checksum mismatch for test.txt" in str(err.value) and "\n" not in str(err.value)
    assert leftovers(tmp_path / "data") == []
    (mirror / "tiny" / "test.txt").unlink()
    with pytest.raises(GraphrecError, match="'test.txt' not found in the mirror"):
        fetch("tiny", str(mirror), tmp_path / "data")
    assert leftovers(tmp_path / "data") == []


def test_data_without_redistribution_accepts_only_a_mirror(mirror, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(CATALOG, "tiny", DatasetEntry(**{**CATALOG["tiny"].__dict__, "redistributable": False,
                                                        "url": "https://example.org/never"}))
    with pytest.raises(GraphrecError, match="terms forbid redistribution.*https://example.org.*--mirror"):
        fetch("tiny", None, tmp_path / "data")
    fetch("tiny", str(mirror), tmp_path / "data")
    assert "terms: test terms; source: https://example.org" in capsys.readouterr().err
    for name in ("yahoo", "frappe"):
        assert not CATALOG[name].redistributable and CATALOG[name].url is None


def test_unregistered_checksums_are_fetched_and_said_unverified(mirror, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(CATALOG, "tiny", DatasetEntry(**{**CATALOG["tiny"].__dict__,
                                                        "files": {"train.txt": None, "test.txt": sha(TEST)}}))
    target = fetch("tiny", str(mirror), tmp_path / "data")
    assert "no registered checksum for train.txt (unverified" in capsys.readouterr().err
    record = json.loads((target / "SOURCE.json").read_text())["files"]["train.txt"]
    assert record["verified"] is False and record["sha256"] == sha(TRAIN)


def test_baby_json_converts_to_mmrec_inter(tmp_path):
    (tmp_path / "train.json").write_text('{"1": [5, 2], "0": [3]}')
    (tmp_path / "val.json").write_text('{"0": [4], "1": [0]}')
    (tmp_path / "test.json").write_text('{"1": [1]}')
    assert baby_inter(tmp_path) == ["baby.inter"]
    assert (tmp_path / "baby.inter").read_text() == ("userID\titemID\tx_label\n0\t3\t0\n0\t4\t1\n1\t0\t1\n1\t1\t2\n"
                                                     "1\t2\t0\n1\t5\t0\n")


def test_registered_checksums_match_the_copies_we_have():
    checked = 0
    for entry in CATALOG.values():
        for file, expected in entry.files.items():
            assert expected is None or (len(expected) == 64 and int(expected, 16) >= 0)
            path = SHARED / entry.name / file
            if expected is not None and path.is_file():
                assert sha(path.read_bytes()) == expected, f"{entry.name}/{file}"
                checked += 1
    if (SHARED / "gowalla").is_dir():
        assert checked >= 20
    if (SHARED / "baby").is_dir():  # the conversion reproduces the baby.inter the multimodal work reads
        assert sha((SHARED / "baby" / "baby.inter").read_bytes()) == \
            "d2ddf5906519e88809f24246e2e465fcf1f24848d9a4cadc82280e4cebc5d6a6"


def test_every_entry_has_terms_a_source_and_a_loadable_data_block(capsys):
    issue_names = {"gowalla", "yelp2018", "amazon-book", "ood-food", "ood-yelp2018", "coat", "yahoo",
                   "ml-latest-small", "baby", "sports", "clothing", "frappe", "ml-tag", "kuairec", "douban"}
    assert issue_names <= set(CATALOG)
    for entry in CATALOG.values():
        assert entry.license and entry.source and entry.format and entry.size
        block = entry.data_block()
        if block is not None:  # feature rows (ml-tag) go with a pointwise model
            model = {"name": "fm"} if block["format"] in FIELD_FORMATS else {"name": "lightgcn"}
            build_config({"data": block, "split": {"method": "random"}, "model": model})
    parser = argparse.ArgumentParser()
    catalog.add_parser(parser.add_subparsers())
    args = parser.parse_args(["list"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in CATALOG) and "--mirror only (no redistribution)" in out


def test_fetch_command_prints_a_ready_data_block(mirror, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    catalog.add_parser(parser.add_subparsers())
    args = parser.parse_args(["fetch", "tiny", "--mirror", str(mirror), "--out", str(tmp_path / "d")])
    assert args.func(args) == 0
    block = json.loads(capsys.readouterr().out.split("data: ", 1)[1])
    assert block["path"] == str(tmp_path / "d" / "tiny") and block["files"]["test"] == "test.txt"
