"""Readers turn command-line inputs into a stream of Items; writers render records."""
