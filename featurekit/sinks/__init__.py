"""Committing results: Delta Lake writes with modes, partitions and commit metadata."""
