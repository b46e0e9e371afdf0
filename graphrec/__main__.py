"""`python -m graphrec` (and `torchrun -m graphrec`) runs the CLI."""
from .cli import entry

entry()
