"""Cleaning: everything that repairs a record or drops a bad one, and why.

Owns the text helpers (``text``: scripts, words, CJK counts; ``html``: HTML → text; ``names``), the
cleaning mappers (``mappers``: HTML, unicode, width, 繁→简, whitespace, URLs, dates), PII masking with
its checksum validators (``pii``), the SFT and pretraining filter sets (``sft_filters``,
``pretrain_filters``: refusals, truncation, repetition, Gopher/C4-style rules), language id and
length filters, the model-based scores (``model_scores``: LLM quality judge, perplexity), the
learned quality classifier (``quality_classifier`` logic, ``quality_classifier_annotate`` LLM scores,
``quality_classifier_split`` the benchmark split, ``quality_classifier_op`` the step, ``cli``:
``datamill quality``), URL rules (``url_filter``), code rules and secret redaction (``code_filters``,
``secrets``) and the planted-defect generator used to measure them (``inject``).

May import: ``datamill.record``, ``datamill.results``, ``datamill.errors``, ``datamill.llm``, and the
operator kinds and registry (``datamill.ops.base``, ``datamill.ops.register``)."""
