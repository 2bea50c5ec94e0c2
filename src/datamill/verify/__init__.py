"""Verifiers and rejection sampling (RFT / STaR): check each sampled answer against a reference, keep the
correct ones as training data, and measure how hard each prompt is for the model that answered.

Logic: ``extract`` (the final answer of a worked solution), ``maths`` (equivalence of two maths answers),
``verifiers`` (one function per kind — math, code, constraints, exact, regex — and a dispatcher),
``passk`` (the unbiased pass@k estimator), ``diversity`` (the most mutually different texts, by MinHash).
Operators: ``rejection`` (``verify_answers``), ``difficulty`` (``difficulty_filter``).
"""
