"""Hooks of the cairn provider."""
