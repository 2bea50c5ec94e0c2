"""Close the loop: fine-tune a model on the data datamill built, and evaluate it (``datamill train`` / ``eval``).

Logic: ``forms`` (records → TRL's conversational rows), ``data`` (which files, fingerprint, rows per stage),
``model`` (base model, device, the embedded Gemma converted from its GGUF), ``methods`` (PEFT configs),
``run`` (the TRL run, resume, train.json), ``curve`` (loss.svg), ``progress`` (the bar), ``scores`` (exact
match, ROUGE-L), ``evaluate`` (held-out loss, generations, eval.json). CLI: ``cli``. Needs the ``train``
extra (TRL, PEFT, torch): ``pip install 'datamill[train]'``; see docs/train.md.
"""
