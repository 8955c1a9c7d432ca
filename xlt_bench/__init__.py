"""xlt-bench: inference-efficiency benchmarking for multilingual encoders, per XTREME-R language."""

__version__ = "0.1.0"
