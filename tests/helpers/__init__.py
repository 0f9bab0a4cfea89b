"""Helpers shared by tests: corpus builders, the fake Messages API server, and the like."""
