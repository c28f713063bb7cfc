"""Rows in: read from files, documents and DataFrames, their ids checked, keyed for the cache, and
the unique work left to ask."""
