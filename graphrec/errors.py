"""User-facing errors and warnings: one clear line each, never a traceback."""
from __future__ import annotations

import sys
from collections import Counter


def one_line(text: str) -> str:
    """`text` as one printable line: a line break, NUL or other control or invisible character becomes its escape
    (\\n, \\x00, \\u202e), so that a user's bytes echoed in a message neither break it nor reach the terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class GraphrecError(Exception):
    """A user's mistake (bad file, key or value); the CLI prints its one-line message and exits 2."""


class WarningLog:
    """Collects one-line data warnings with counts so they can be printed and saved in the run folder."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.messages: dict[str, str] = {}

    def warn(self, kind: str, count: int, message: str) -> None:
        """Record `count` occurrences of `kind` and print `message` once, prefixed with 'warning:'."""
        if count <= 0:
            return
        self.counts[kind] += count
        self.messages[kind] = message = one_line(message)
        print(f"graphrec: warning: {message}", file=sys.stderr)

    def as_dict(self) -> dict[str, dict[str, object]]:
        """The warnings as {kind: {count, message}} for warnings.json."""
        return {k: {"count": int(v), "message": self.messages[k]} for k, v in self.counts.items()}
