"""Profiling: backends (build), runners (measure), samplers, and the latency store."""
