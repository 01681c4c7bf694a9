"""Data quality: Great Expectations suites (suites.py, free of Dagster) and the Dagster
asset checks that run them on lake partitions and marts (checks.py)."""
