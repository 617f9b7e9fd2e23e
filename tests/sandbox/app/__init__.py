"""The app's stand-ins: the fixture app's repository, DuckDB's extension repository, the env
files (``site.py``)."""
