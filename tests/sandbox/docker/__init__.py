"""The Docker VM stand-in: a sandbox container running a Docker engine (``site.py``)."""
