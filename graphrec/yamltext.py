"""Reading YAML strictly: a key given twice is an error (both lines named), UTF-16 and NUL bytes are named plainly."""
from __future__ import annotations

import codecs
import os
from pathlib import Path
from typing import Any

import yaml

from .errors import GraphrecError

MERGE_TAG = "tag:yaml.org,2002:merge"
UTF16_OR_32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


class DuplicateKeyError(yaml.YAMLError):
    """A mapping holds the same key twice; `first` and `second` are 1-based line numbers."""

    def __init__(self, key: Any, first: int, second: int) -> None:
        super().__init__(f"key '{key}' appears twice (lines {first} and {second})")
        self.key, self.first, self.second = key, first, second


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, except that a mapping key given twice raises DuplicateKeyError instead of the last
    silently winning (keys brought in by a `<<:` merge may still be overridden, as YAML intends)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        """The mapping of `node`, refusing a repeated explicit key."""
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise DuplicateKeyError(key, seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: SafeLoader reports it
                pass
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str) -> Any:
    """YAML text -> data with UniqueKeyLoader; raises yaml.YAMLError (DuplicateKeyError for a repeated key)."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def yaml_problem(exc: yaml.YAMLError) -> tuple[str, str]:
    """(' line N', one-line problem) of a YAML error, the line being where the parser stopped."""
    if isinstance(exc, DuplicateKeyError):
        return f" line {exc.second}", (f"key '{exc.key}' appears twice in one mapping (lines {exc.first} and "
                                        f"{exc.second}); YAML would keep only the last: merge them into one")
    mark = getattr(exc, "problem_mark", None)
    line = f" line {mark.line + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None and mark is not None and context_mark.line != mark.line:
        problem = f"{problem} ({context} that starts on line {context_mark.line + 1})"
    elif context and context not in problem:
        problem = f"{problem} ({context})"
    return line, f"invalid YAML: {problem}; check the indentation and the 'key: value' syntax there"


def decode_config_bytes(path: Path, payload: bytes) -> str:
    """The text of a YAML config's bytes: UTF-8 (a BOM allowed); UTF-16/32 and NUL bytes get their own fix."""
    if payload.startswith(UTF16_OR_32_BOMS) or (len(payload) >= 2 and b"\x00" in payload[:2]
                                                and payload.count(b"\x00") * 3 >= len(payload)):
        raise GraphrecError(f"{path}: the file is saved as UTF-16 (or UTF-32); save it as UTF-8 (a YAML config is "
                            "UTF-8 text)")
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = payload[:exc.start].count(b"\n") + 1
        raise GraphrecError(f"{path} line {line}: not UTF-8 text (byte 0x{payload[exc.start]:02x}); save the file "
                            "as UTF-8") from None
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise GraphrecError(f"{path} line {line}: the file holds a NUL byte (\\x00); a YAML config is plain text: "
                            "remove it (was the file copied from a binary or a UTF-16 one?)")
    return text


def read_yaml_file(path: str | os.PathLike) -> tuple[Any, str]:
    """(data, text) of a YAML file with one-line errors for a missing or unreadable file, encoding and syntax."""
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            inside = sorted(p.name for p in path.glob("*.yaml"))[:4]
            hint = f"pass a .yaml file inside it ({', '.join(inside)})" if inside else "pass a .yaml file"
            raise GraphrecError(f"config file '{path}' is a folder, not a YAML file; {hint}")
        raise GraphrecError(f"config file '{path}' not found; check the path (e.g. experiments/quickstart.yaml)")
    try:
        text = decode_config_bytes(path, path.read_bytes())
    except OSError as exc:
        raise GraphrecError(f"{path}: cannot read the config ({exc.strerror})") from None
    try:
        return parse_yaml(text), text
    except yaml.YAMLError as exc:
        line, problem = yaml_problem(exc)
        raise GraphrecError(f"{path}{line}: {problem}") from None
