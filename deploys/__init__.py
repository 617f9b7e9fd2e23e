"""egograph-deploy: the EgoGraph backend runbook as a pyinfra deploy.

Layers, lowest first; a module imports only from its own layer's package or from lower
ones (``tests/unit/test_layers.py`` keeps this true; an import only for type hints, under
``TYPE_CHECKING``, is not a dependency):

- ``common``: managed files, the one-command state read (``snapshot``), shell pieces,
  stamps, the setting declarations and checks, controller secrets, the ``egodeploy``
  commands' pyinfra session (``reach``);
- ``runlock``: one run at a time on a target (the lock its state read takes);
- the concerns, one sub-package each with its settings, facts, pure plan, operations and
  ``@deploy`` functions, in the runbook's order: ``packages`` (apt), ``repo`` (the
  checkout), ``uv``, ``duckdb``, ``services`` (env files, systemd units), ``tailscale``,
  ``docker`` (the VM variant), ``proxmox`` (the container on its node);
- ``audit``: the audit log on the target (an entry per run that changed or failed);
- ``settings``: every concern's slice composed into the typed ``Settings``, and validation;
- ``inventory`` (hosts, validated before pyinfra connects) and ``hostsettings`` (a host's
  validated settings);
- ``facts`` (ad-hoc facts over several concerns), ``container`` and ``vm`` (the deploys in
  runbook order);
- entry points: the entry files (``prod``, ``update``, ``rollback``, ``destroy``,
  ``docker_vm``), the ``@pvelxc`` connector (``proxmox.connector``, which pyinfra loads as such),
  ``proxmox.revert`` (``egodeploy rollback --snapshot``), ``cli``
  (``egodeploy``), ``drift``, ``logs``, ``preflight`` and ``status`` (its ``drift``,
  ``logs``, ``preflight`` and ``status`` commands) and ``docs``.
"""

LAYERS: tuple[tuple[str, ...], ...] = (
    ("common",),
    ("runlock",),
    ("packages",),
    ("repo",),
    ("uv",),
    ("duckdb",),
    ("services",),
    ("tailscale",),
    ("docker",),
    ("proxmox",),
    ("audit",),
    ("settings",),
    ("inventory", "hostsettings"),
    ("facts", "container", "vm"),
    (
        "prod",
        "update",
        "rollback",
        "destroy",
        "docker_vm",
        "proxmox.connector",
        "proxmox.revert",
        "cli",
        "drift",
        "logs",
        "preflight",
        "status",
        "docs",
    ),
)
"""The layer map above, as the layer test reads it (top-level names under ``deploys``; a
dotted name places one module apart from its package)."""
