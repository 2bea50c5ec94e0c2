"""Pure building blocks of LLM synthesis (Self-Instruct, Evol-Instruct, doc→QA, back-translation,
constraints): tokenizing and ROUGE-L with an index, parsing model answers, chunking, checkers.

Nothing here calls a model; the operators in ``datamill.ops`` do, and use these to prompt, parse and
filter. Keeping them pure keeps them fast to test and reusable (e.g. the constraint checkers)."""
