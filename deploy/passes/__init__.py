"""deploy/passes."""
