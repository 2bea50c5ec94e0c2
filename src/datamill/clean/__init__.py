"""Text helpers shared by the cleaning and quality operators (no operator lives here)."""
