"""Synthesis: new instructions, answers and dialogues from seeds, documents or existing data.

The operators (``self_instruct``, ``evol_instruct``, ``backtranslate``, ``doc_qa``,
``flan_templates``, ``multi_turn``, ``paraphrase``, ``add_constraints``) prompt a model through
``datamill.llm``; the pure building blocks beside them call none: tokenizing and ROUGE-L with an index
(``rouge``), parsing model answers (``parse``), chunking (``chunking``), task and record helpers
(``common``), instruction and evolution checks (``instructions``, ``evol``) and the constraint
checkers (``constraints``) — fast to test and reusable.

May import: ``datamill.record``, ``datamill.results``, ``datamill.errors``, ``datamill.llm``,
``datamill.clean.text``, and the operator kinds and registry."""
