"""graphrec: graph-based recommendation with fast sparse propagation and full-ranking evaluation."""
import warnings

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")

__version__ = "0.1.0"
