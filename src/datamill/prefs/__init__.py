"""Preference and feedback data: several answers per prompt (``candidates``) → ranked by a judge, rules,
votes or ratings → chosen/rejected pairs (DPO/ORPO/reward) or KTO labels.

The pure logic (``candidates``, ``judge``, ``pairs``, ``rules``, ``sandbox``) sits beside the operators
that run it in a recipe (``answers``: group_answers, sample_answers; ``ranking``: judge_score,
judge_pairwise, rule_score; ``training_pairs``: make_pairs, make_kto) and the ``datamill prefs``
sub-app (``cli``). May import: ``datamill.record``, ``datamill.results``, ``datamill.errors``,
``datamill.llm``, and the operator kinds and registry.

A record carrying candidates keeps them in ``meta["candidates"]``: a list of
``{"model", "text", ...}`` dicts that judges annotate with ``score``/``reason``/``wins`` and that
feedback may carry as ``rating``, ``votes`` or ``thumb``.
"""
