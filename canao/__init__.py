"""canao: latency-predictor-first, compiler-aware BERT architecture search."""

import warnings

__version__ = "0.1.0"


def quiet_library_warnings() -> None:
    """Silence the libraries' deprecation chatter that says nothing to a canao user (torch.export's
    ``LeafSpec`` notice, once per spec TVM imports; TVM's ``build is deprecated``). Called by the
    CLI and by every worker process it spawns, which start with Python's default filters."""
    warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
    warnings.filterwarnings("ignore", message="build is deprecated", category=DeprecationWarning)
