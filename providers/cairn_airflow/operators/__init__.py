"""Operators of the cairn provider."""
