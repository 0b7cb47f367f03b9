"""Sensors of the cairn provider."""
