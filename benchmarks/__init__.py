"""graphrec's speed, memory and accuracy benchmarks: `python -m benchmarks --help`; results in docs/benchmarks.md."""
