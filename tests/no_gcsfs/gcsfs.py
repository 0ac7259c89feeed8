"""Put first on PYTHONPATH, this stands for an install without gcsfs (the [gcs] extra): importing it fails."""

raise ImportError("No module named 'gcsfs' (tests/no_gcsfs stands for an install without the [gcs] extra)")
