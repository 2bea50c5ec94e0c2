"""Choosing and arranging records: quality × diversity selection with quotas (``choose``, and the
``datamill select`` command in ``cli``), mixing sources by ratio of records or tokens (``mix``, its
arithmetic in ``mixing``), leak-free splits (``split``) and the groups they keep together
(``groups``), and token counts (``tokens``: count_tokens, cutoff_len; ``tokenizer``: the tokenizers,
also used by the report).

May import: ``datamill.record``, ``datamill.results``, ``datamill.errors``, ``datamill.io``,
``datamill.llm.embeddings``, ``datamill.clean.text``, ``datamill.dedup.unionfind``, and the operator
kinds and registry."""
