"""Recipes, the runner and its executors."""
