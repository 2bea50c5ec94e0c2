"""Deduplication building blocks: vectorized MinHash/LSH and n-gram indexes."""
