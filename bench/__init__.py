"""Benchmarks against the peers, run by ``nox -s bench``; see bench/__main__.py."""
