"""canao: latency-predictor-first, compiler-aware BERT architecture search."""

__version__ = "0.1.0"
