"""Deduplication and decontamination: exact (``exact``), MinHash-LSH near-duplicates
(``minhash`` logic, ``minhash_dedup`` operator, ``index`` for a persistent corpus index,
``clusters``, ``unionfind``, ``evaluate``), embedding near-duplicates (``semantic``) and benchmark
decontamination (``decontaminate``: exact, n-gram, fuzzy and semantic; ``benchmarks``: the test-set
files and the shipped GSM8K; ``lookup``).

May import: ``datamill.record``, ``datamill.results``, ``datamill.errors``, ``datamill.io``,
``datamill.llm.embeddings`` (and ``datamill.llm.client``'s cache folder), ``datamill.clean.text``,
and the operator kinds and registry."""
