"""Corpora: the manifest format, the built-in real corpora and importers of a user's files."""
