"""Lineage: what a run stores about each record's history (``lineage``) and ``datamill trace``, which
finds a record in a run's output folder and tells where it came from (``lookup``, ``command``)."""
