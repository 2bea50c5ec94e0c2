"""Preference and feedback data: several answers per prompt (``candidates``) → ranked by a judge, rules,
votes or ratings → chosen/rejected pairs (DPO/ORPO/reward) or KTO labels.

The pure logic lives here (no I/O, no LLM client state); the operators that run it in a recipe are in
``datamill.ops.prefs_*``. A record carrying candidates keeps them in ``meta["candidates"]``: a list of
``{"model", "text", ...}`` dicts that judges annotate with ``score``/``reason``/``wins`` and that
feedback may carry as ``rating``, ``votes`` or ``thumb``.
"""
