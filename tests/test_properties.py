"""Property-based: careless config values, `--set` strings and corrupted data files, each through `graphrec train`.

For every generated input: exit 0 or 2 and never a traceback; on 2 exactly one printable `graphrec: error:` line
and nothing written (or only a run folder marked FAILED.json); on 0 one complete run folder; and an accepted data
file means what it says (the events read are those a strict reading of the file gives).

Budget: PROPERTY_EXAMPLES examples per property (60 by default, about 10-20 s each on one core); a failure prints
hypothesis's reproduction blob. More examples: GRAPHREC_PROPERTY_EXAMPLES=500 python -m pytest tests/test_properties.py
"""
from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
import tempfile
import typing
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphrec.cli import main
from graphrec.config import config_from_file
from graphrec.data.loader import load_dataset
from graphrec.models import MODELS
from graphrec.schema import section_classes

PROPERTY_EXAMPLES = int(os.environ.get("GRAPHREC_PROPERTY_EXAMPLES", "60"))
# CI draws the same examples every run (a red CI must be reproducible); GRAPHREC_PROPERTY_RANDOM=1 explores new ones,
# and a failure prints the blob that replays it.
BUDGET = settings(max_examples=PROPERTY_EXAMPLES, deadline=None, print_blob=True, database=None,
                  derandomize=not os.environ.get("GRAPHREC_PROPERTY_RANDOM"),
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                         HealthCheck.data_too_large])

# A tiny valid experiment: ~0.1 s of training.
BASE = {
    "name": "prop", "seed": 1, "device": "cpu", "output_dir": "runs",
    "data": {"format": "synthetic",
             "synthetic": {"num_users": 30, "num_items": 20, "num_communities": 2, "mean_degree": 8, "seed": 1}},
    "split": {"method": "random", "valid_ratio": 0.2, "test_ratio": 0.2},
    "model": {"name": "lightgcn", "embedding_dim": 4, "num_layers": 1},
    "train": {"epochs": 1, "batch_size": 64, "max_batches": 2, "progress": False, "threads": 1, "patience": 2},
    "eval": {"topk": [5]},
    "tracking": {"mode": "disabled"},
}

# Keys whose value sets the cost of a run: generated only from values that are cheap or invalid.
COSTLY = {"train.epochs", "train.max_batches", "train.batch_size", "train.num_negatives", "train.negative_candidates",
          "train.eval_every", "train.patience", "train.threads", "model.embedding_dim", "model.num_layers",
          "data.synthetic.num_users", "data.synthetic.num_items", "data.synthetic.num_communities",
          "data.synthetic.mean_degree", "eval.topk", "eval.max_score_elements", "data.kcore", "train.lr_milestones"}
CHEAP = [-(2 ** 64), -(2 ** 63) - 1, -1, 0, 1, 2, 3, 2 ** 63, 2 ** 64, 1.5, True, "x", "", None, float("nan")]


def _fields() -> dict[str, object]:
    """Every config key as 'section.key' -> its annotation, with the keys of every registered model."""
    out = {}
    for prefix, cls in section_classes().items():
        out.update({f"{prefix}.{name}" if prefix else name: field.annotation
                    for name, field in cls.model_fields.items() if name != "base_dir"})
    for cls in MODELS.values():
        out.update({f"model.{name}": field.annotation for name, field in cls.config_class.model_fields.items()})
    return out


FIELDS = _fields()
KEYS = sorted(FIELDS) + ["lerning_rate", "train.learning_rate", "data.columns.user", "data.columns.item",
                         "data.files.all", "data.files.train", "train.groups.main.lr", "model.name.x", "train.lr.x",
                         "data.positive_labels"]
NASTY_TEXT = ["", " ", "\x00", "a\x00b", "\t", "\\t", "\n", "/", "a/b", "..", ".", "é", "\u202e", "x" * 300,
              "~", "null", "1_0", "0x10", "1e400", "-0", "NaN"]
BOUNDARY_INTS = [-(2 ** 64), -(2 ** 63) - 1, -(2 ** 63), -(2 ** 31), -1, 0, 1, 2, 2 ** 31 - 1, 2 ** 32 - 1, 2 ** 32,
                 2 ** 53 + 1, 2 ** 63 - 1, 2 ** 63, 2 ** 64]
BOUNDARY_FLOATS = [0.0, -0.0, 1e-300, 1e300, -1e300, 0.5, 1.0, 1.5, -1.0, float("nan"), float("inf"), float("-inf")]
WRONG = st.one_of(st.sampled_from([None, True, "x", "", [], {}, [1], {"a": 1}]), st.text(max_size=8))


def _typed(annotation, costly: bool) -> st.SearchStrategy:
    """Careless values of (mostly) the right type for an annotation: boundaries, near misses, NaN, NUL."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union:
        return st.one_of(st.none(), *[_typed(a, costly) for a in args if a is not type(None)])
    if origin is typing.Literal:
        return st.one_of(st.sampled_from(args), st.sampled_from([a.upper() + " " for a in args if isinstance(a, str)]
                                                                or ["x"]))
    if annotation is bool:
        return st.one_of(st.booleans(), st.sampled_from(["yes", "no", "on", 2, "true"]))
    if annotation is int:
        if costly:
            return st.sampled_from([-(2 ** 64), -(2 ** 63) - 1, -1, 0, 1, 2, 3, 2 ** 63, 2 ** 64, 1.5, 2.0])
        return st.one_of(st.sampled_from(BOUNDARY_INTS), st.integers(-5, 50), st.integers(-(2 ** 70), 2 ** 70))
    if annotation is float:
        if costly:
            return st.sampled_from([-1.0, 0.0, 0.5, 1.0, 3.0, float("nan"), float("inf"), 1e300])
        return st.one_of(st.sampled_from(BOUNDARY_FLOATS), st.floats(allow_nan=True, allow_infinity=True))
    if annotation is str:
        return st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=10))
    if origin is list:
        item = _typed(args[0], True) if args else st.integers()
        return st.lists(item, max_size=3)
    if origin is dict:
        return st.dictionaries(st.sampled_from(["a", "main", "user", "item", "all", "train", "test"]),
                               _typed(args[1], True) if args and args[1] is not typing.Any else st.integers(-2, 3),
                               max_size=2)
    return WRONG


def careless_value(key: str) -> st.SearchStrategy:
    """A value for a key: mostly of its type, sometimes of any type. output_dir stays inside the test's folder."""
    if key == "output_dir":
        return st.sampled_from(["runs", "runs/deeper/still", "", " ", "x" * 300, "a\x00b", "cfg.yaml", "cfg.yaml/x",
                                "runs\\x", "r\u00e9sultats", 7, None, [], {}])
    typed = _typed(FIELDS[key], key in COSTLY) if key in FIELDS else WRONG
    return st.one_of(typed, typed, typed, typed, typed, WRONG)


def _set_path(config: dict, dotted: str, value) -> None:
    """Put value at a dotted path, creating or replacing sections on the way."""
    *parents, last = dotted.split(".")
    node = config
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


def _group(key: str) -> str:
    """The kind of a key, so that each kind gets its share of examples: seeds, ints, floats, text, other."""
    annotation = FIELDS.get(key)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if typing.get_origin(annotation) is typing.Union and len(args) == 1 else annotation
    if key.endswith("seed"):
        return "seed"
    return {int: "int", float: "float", str: "text"}.get(base, "other" if key in FIELDS else "unknown")


KEY_GROUPS = {name: sorted(k for k in KEYS if _group(k) == name) for name in ("seed", "int", "float", "text", "other",
                                                                               "unknown")}


@st.composite
def config_texts(draw) -> bytes:
    """A YAML experiment as bytes: the base with one or two keys (each kind of key equally often) set to careless
    values, and now and then damaged text (a repeated key, UTF-16, a NUL byte, a tab, nothing, cut short)."""
    config = yaml.safe_load(yaml.safe_dump(BASE))
    for _ in range(draw(st.sampled_from([1, 1, 1, 2]))):
        key = draw(st.sampled_from(KEY_GROUPS[draw(st.sampled_from(sorted(KEY_GROUPS)))]))
        value = draw(careless_value(key))
        _set_path(config, key, value)
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=draw(st.booleans()))
    damage = draw(st.sampled_from(["duplicate", "utf16", "nul", "empty", "comments", "tab", "truncate",
                                   "single_quoted_tab"])) if draw(st.integers(0, 5)) == 0 else "none"
    lines = text.splitlines(keepends=True)
    if damage == "duplicate":
        index = draw(st.integers(0, len(lines) - 1))
        text = "".join(lines + [lines[index]]) if not lines[index].startswith(" ") else text
    elif damage == "truncate":
        text = text[:draw(st.integers(0, len(text)))]
    elif damage == "empty":
        text = ""
    elif damage == "comments":
        text = "# nothing here\n\n"
    elif damage == "tab":
        text = text.replace("  ", "\t", 1)
    elif damage == "nul":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + "\x00" + text[at:]
    elif damage == "single_quoted_tab":
        text += "data: {format: csv, path: x.csv, delimiter: '\\t', columns: {user: 0, item: 1}, header: false}\n"
    return text.encode("utf-16" if damage == "utf16" else "utf-8")


SET_SNIPPETS = ["{a: 1, a: 2}", "[", "{", "'\\t'", '"\\t"', ".nan", ".inf", "-.inf", "1e400", str(2 ** 64),
                str(2 ** 63), str(-(2 ** 63) - 1), "-1", "~", "", "!!python/object:os.system", "x\x00y", "0", "1",
                "random", "cosine", "[1, 2]", "{lr: 1}", "a/b", "1_0", "'1'", "yes", "no", "@x", "%x", "`x"]


@st.composite
def set_strings(draw) -> list[str]:
    """One to three `--set` arguments: real or misspelled keys with careless values, or text without '='."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["key", "key", "key", "raw"]))
        if kind == "raw":
            out.append(draw(st.text(max_size=15)))
            continue
        key = draw(st.one_of(st.sampled_from(KEYS), st.sampled_from(["", ".", "train.", ".lr", "a..b", "=", " x "]),
                             st.text(alphabet="abcdefghijklmnopqrstuvwxyz._", min_size=1, max_size=12)))
        if key in COSTLY:
            value = draw(st.sampled_from([str(v) for v in CHEAP if v is not None] + ["~"]))
        else:
            value = draw(st.one_of(st.sampled_from(SET_SNIPPETS), st.text(max_size=10)))
        out.append(f"{key}={value}")
    return out


# ---- data files -----------------------------------------------------------------------------------------------

def _base_events() -> list[tuple[int, int]]:
    """12 users with 12 items each among 30 (enough per user for a 10% validation carve)."""
    rng = np.random.default_rng(0)
    return [(u, int(i)) for u in range(12) for i in sorted(rng.choice(30, 12, replace=False))]


TEST_EVENTS = [(u, 30 + u % 3) for u in range(12)]
NASTY_TOKENS = ["1_0", "+3", "\u0663", "\u00b2", "99999999999999999999", str(2 ** 63), "-1", "nan", "inf", "-inf",
                '"', '""', '"3', "\x00", "\t", ",", "0x10", "1e3", "1.0", "0", "2", "-1", "u7", "", " ", "\ufeff",
                "\x0c", "\x1c", "\u2028", "\r", "1.5", "0.0", "00012", "1,2", "3 4"]


def render(fmt: str, events: list[tuple[int, int]]) -> str:
    """A data file of the events in a format: pairs `u i 1`, lightgcn `u i i ...`, csv with a header."""
    if fmt == "pairs":
        return "".join(f"{u} {i} 1\n" for u, i in events)
    if fmt == "csv":
        return "user,item,rating\n" + "".join(f"{u},{i},4.0\n" for u, i in events)
    by_user: dict[int, list[int]] = {}
    for u, i in events:
        by_user.setdefault(u, []).append(i)
    return "".join(f"{u} {' '.join(map(str, items))}\n" for u, items in by_user.items())


@st.composite
def corrupted_files(draw) -> tuple[str, bytes, bool]:
    """(format, corrupted train file bytes, skip_bad_lines)."""
    fmt = draw(st.sampled_from(["pairs", "lightgcn", "csv"]))
    text = render(fmt, _base_events())
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        index = draw(st.integers(0, max(0, len(lines) - 2)))
        line = lines[index]
        action = draw(st.sampled_from(["token", "token", "replace_token", "delete_char", "duplicate", "truncate",
                                       "quote", "swap_sep", "label"]))
        if action in ("token", "replace_token") and line:
            parts = line.split(" " if fmt != "csv" else ",")
            at = draw(st.integers(0, len(parts) - (action == "replace_token")))
            token = draw(st.one_of(st.sampled_from(NASTY_TOKENS), st.text(max_size=3)))
            if action == "token":
                parts.insert(at, token)
            else:
                parts[at] = token
            line = (" " if fmt != "csv" else ",").join(parts)
        elif action == "delete_char" and line:
            at = draw(st.integers(0, len(line) - 1))
            line = line[:at] + line[at + 1:]
        elif action == "duplicate":
            lines.insert(index, line)
        elif action == "truncate":
            text = text[:draw(st.integers(0, len(text)))]
            continue
        elif action == "quote":
            at = draw(st.integers(0, len(line)))
            line = line[:at] + '"' + line[at:]
        elif action == "swap_sep":
            line = line.replace(" ", ",") if fmt != "csv" else line.replace(",", ";")
        elif action == "label" and fmt == "pairs" and line:
            line = line.rsplit(" ", 1)[0] + " " + draw(st.sampled_from(["0", "-1", "2", "0.5", "nan", "1.0", "+1"]))
        lines[index] = line
        text = "\n".join(lines)
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"]))
    try:
        payload = text.encode(encoding)
    except UnicodeEncodeError:
        payload = text.encode("utf-8")
    return fmt, payload, draw(st.booleans())


BLANKS = re.compile(r"[ \t\r\x0b\x0c]+")


def _strict_id(token: str):
    """The id a token means: ASCII digits below 2**63 as their int, other non-empty text as itself."""
    token = token.strip(" \t")
    if token.isascii() and token.isdigit():
        value = int(token)
        return value if value < 2 ** 63 else None
    return token or None


def _is_one(token: str) -> bool:
    """Whether a label token is the number 1 written plainly ('1', '1.0', '+1', '1e0')."""
    return re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", token) is not None and float(token) == 1


def _finite(token: str) -> bool:
    token = token.strip(" \t")
    return re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", token) is not None and math.isfinite(float(token))


def meaning(fmt: str, payload: bytes) -> set[tuple[str, str]] | None:
    """The (user, item) events a strict reading of the file gives (None if it is not UTF-8 text without NUL).

    Lines end at '\\n' only; fields are split at ASCII blanks (pairs, lightgcn) or commas (csv, one physical line
    at a time). pairs: `user item [label]` with integer ids, only label 1 is a positive event; lightgcn:
    `user item ...` with integer ids; csv: `user,item,rating` with a finite rating.
    """
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    if "\x00" in text:
        return None
    events = set()
    lines = text.split("\n")
    if fmt == "csv":
        lines = lines[1:]
    for line in lines:
        line = line.removesuffix("\r")
        if fmt == "csv":
            try:
                rows = list(csv.reader([line], strict=True))
            except csv.Error:
                continue
            if len(rows) != 1 or len(rows[0]) < 3 or not _finite(rows[0][2]):
                continue
            user, item = _strict_id(rows[0][0]), _strict_id(rows[0][1])
            if user is not None and item is not None:
                events.add((str(user), str(item)))
            continue
        tokens = [t for t in BLANKS.split(line) if t]
        ids = [_strict_id(t) if t.isascii() and t.isdigit() else None for t in tokens]
        if fmt == "pairs":
            if len(tokens) in (2, 3) and None not in ids[:2] and (len(tokens) == 2 or _is_one(tokens[2])):
                events.add((str(ids[0]), str(ids[1])))
        elif len(tokens) >= 2 and None not in ids:
            events.update((str(ids[0]), str(i)) for i in ids[1:])
    return events


def data_config(fmt: str, skip: bool) -> dict:
    """The base experiment on a data/ folder with train.txt (generated) and test.txt (fixed)."""
    data = {"path": "data", "format": fmt, "files": {"train": "train.txt", "test": "test.txt"},
            "skip_bad_lines": skip}
    if fmt == "csv":
        data["columns"] = {"user": "user", "item": "item", "rating": "rating"}
    return {**{k: v for k, v in BASE.items() if k not in ("data", "split")}, "data": data,
            "split": {"valid_ratio": 0.1}}


# ---- running ----------------------------------------------------------------------------------------------------

def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its size and mtime."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def run_cli(args: list[str], workdir: Path) -> tuple[int, str]:
    """main(args) inside workdir; returns (exit code, stderr). An exception escaping main fails the test."""
    before = snapshot(workdir)
    err, cwd = io.StringIO(), os.getcwd()
    os.chdir(workdir)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(args)
    finally:
        os.chdir(cwd)
    text = err.getvalue()
    assert code in (0, 2), (code, text)
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("graphrec: error: ")]
    after = snapshot(workdir)
    new = sorted(path for path in after if path not in before or after[path] != before[path])
    assert not [p for p in new if p.endswith(".partial")], f"a hidden run folder was left: {new}"
    if code == 2:
        assert len(errors) == 1, text
        assert errors[0].isprintable(), repr(errors[0])
        failed = [p.rsplit("/", 1)[0] for p in new if p.endswith("/FAILED.json")]  # runs marked failed, and
        stray = [p for p in new if not any(p == f or p.startswith(f + "/") or f.startswith(p + "/") for f in failed)]
        assert not stray, f"an error wrote {stray}: {errors[0]}"  # their files and the folders above them only
    else:
        assert not errors, text
        runs = {p.rsplit("/", 1)[0] for p in new if p.endswith("/metrics.json")}
        assert len(runs) == 1, new
    return code, text


@pytest.fixture(autouse=True, scope="module")
def _offline():
    """No W&B network access from generated tracking settings."""
    saved = os.environ.get("WANDB_MODE")
    os.environ["WANDB_MODE"] = "disabled"
    yield
    if saved is None:
        os.environ.pop("WANDB_MODE")
    else:
        os.environ["WANDB_MODE"] = saved


def _workdir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="graphrec-prop-")


@BUDGET
@given(config_texts())
def test_careless_config_values(payload):
    with _workdir() as tmp:
        workdir = Path(tmp)
        (workdir / "cfg.yaml").write_bytes(payload)
        run_cli(["train", "cfg.yaml"], workdir)


@BUDGET
@given(set_strings())
def test_careless_set_strings(overrides):
    with _workdir() as tmp:
        workdir = Path(tmp)
        (workdir / "cfg.yaml").write_text(yaml.safe_dump(BASE, sort_keys=False))
        args = ["train", "cfg.yaml"] + [part for text in overrides for part in ("--set", text)]
        code, err = run_cli(args, workdir)
        error = next((line for line in err.splitlines() if line.startswith("graphrec: error: ")), "")
        if "cfg.yaml line" in error:  # a --set value is never blamed on the file alone
            assert "--set" in error, error


@BUDGET
@given(corrupted_files())
def test_corrupted_data_files(case):
    fmt, payload, skip = case
    with _workdir() as tmp:
        workdir = Path(tmp)
        (workdir / "data").mkdir()
        (workdir / "data" / "train.txt").write_bytes(payload)
        (workdir / "data" / "test.txt").write_text(render(fmt, TEST_EVENTS))
        (workdir / "cfg.yaml").write_text(yaml.safe_dump(data_config(fmt, skip), sort_keys=False))
        code, _ = run_cli(["train", "cfg.yaml"], workdir)
        if code != 0:
            return
        expected = meaning(fmt, payload)
        assert expected is not None, "a file that is not UTF-8 text was accepted"
        cwd = os.getcwd()
        os.chdir(workdir)
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                dataset = load_dataset(config_from_file("cfg.yaml"))
        finally:
            os.chdir(cwd)
        read = dataset.train.concat(dataset.valid) if dataset.valid is not None else dataset.train
        got = {(str(dataset.user_ids[u]), str(dataset.item_ids[i])) for u, i in zip(read.user, read.item)}
        assert got <= expected, f"read events the file does not hold: {sorted(got - expected)[:5]}"
        if not skip:
            assert got == expected, f"events of the file not read: {sorted(expected - got)[:5]}"
