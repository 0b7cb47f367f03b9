"""Triggers of the cairn provider (run by Airflow's triggerer for deferrable sensors)."""
