"""The speed benchmark (see README.md); a package, so run its scripts with ``python -m benchmarks.<name>``."""
