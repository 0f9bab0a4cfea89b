"""Taurus: a terminal coding assistant and the toolkit that looks after its sessions."""

__version__ = "0.1.0"
