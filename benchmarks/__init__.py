"""graphrec's speed, memory and accuracy benchmarks: `python -m benchmarks --help`; results in docs/benchmarks.md."""
import graphrec  # noqa: F401  (first: its memory policy must be in place before torch is imported)
