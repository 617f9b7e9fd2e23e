"""egograph-deploy: the EgoGraph backend runbook as a pyinfra deploy.

Layers:
- entry files (``prod.py``): thin; run by ``pyinfra inventory.py deploys/<entry>.py``
- ``settings``: every setting's form and meaning, validation; values in ``group_data/``
- ``inventory``: hosts, validated before pyinfra connects
- ``container``: the in-container deploy in runbook order
- one sub-package per concern, each with its ``@deploy``, facts and operations:
  ``packages`` (apt), ``uv``, ``repo`` (git checkout), ``duckdb``, ``services`` (env files,
  systemd units), plus ``common`` (managed files, stamps)
"""
