"""Deduplication and decontamination: exact (``exact``), MinHash-LSH near-duplicates
(``minhash`` logic, ``minhash_dedup`` operator, ``index`` for a persistent corpus index,
``clusters``, ``unionfind``, ``evaluate``), embedding near-duplicates (``semantic``) and benchmark
n-gram decontamination (``decontaminate``, ``lookup``).

May import: ``datamill.record``, ``datamill.results``, ``datamill.errors``, ``datamill.io``,
``datamill.llm.embeddings``, ``datamill.clean.text``, and the operator kinds and registry."""
