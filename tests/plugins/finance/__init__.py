"""Tests of the finance plugin (a package, so its conftest does not shadow tests/conftest.py)."""
