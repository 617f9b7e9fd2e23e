"""PVE VE API emulator for tests (LXC subset, PVE 8.4 and 9.1 schemas).

``emulator.py`` is the entry (:class:`~.emulator.PveEmulator`), built from a module per PVE
resource: ``state``, ``auth``, ``tasks``, ``conf``, ``storage``, ``lxc``, ``snapshot``,
``cluster``, ``server``; the privilege model in ``permissions.py`` and ``lxc_permissions.py``,
the API schemas in ``schema.py``, container backends in ``backend.py`` and
``sandbox_backend.py``. ``site.py`` runs it as the sandbox's Proxmox node; ``fixtures.py``
has the pytest fixtures of the tests that run against it.
"""
