"""graphrec: graph-based recommendation with fast sparse propagation and full-ranking evaluation."""
import warnings

from .allocator import request_huge_pages

request_huge_pages()  # before anything imports torch, which reads it once

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")

__version__ = "0.1.0"
