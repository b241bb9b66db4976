"""HTTP serving (later)."""
