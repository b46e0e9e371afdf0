"""Integer lists as a user writes them on the command line: 1-5, 1,3,7 or 1-3,7 (`--seeds`, `--trials`)."""
from __future__ import annotations

import re

from ..errors import GraphrecError

_LIST_TEXT = re.compile(r"^\s*\d+\s*(-\s*\d+\s*)?(,\s*\d+\s*(-\s*\d+\s*)?)*$")


def parse_number_list(text: str, option: str, noun: str) -> list[int]:
    """'1-5' -> [1, 2, 3, 4, 5]; '1,3,7' and '1-3,7' as written; one-line error naming `option` for anything else
    or a repeat."""
    if not _LIST_TEXT.match(text or ""):
        raise GraphrecError(f"{option} {text!r}: give {noun}s as 1-5, 1,3,7 or 1-3,7 (non-negative integers)")
    numbers: list[int] = []
    for part in text.split(","):
        first, _, last = (p.strip() for p in part.partition("-"))
        if last and int(last) < int(first):
            raise GraphrecError(f"{option} {text}: range {first}-{last} runs backwards; write {last}-{first}")
        numbers += range(int(first), int(last or first) + 1)
    repeated = sorted({n for n in numbers if numbers.count(n) > 1})
    if repeated:
        raise GraphrecError(f"{option} {text}: {noun} {repeated[0]} is listed twice; list each {noun} once")
    return numbers
