"""Containers at the edge: reading rows from and writing rows to files of every supported type."""
