"""Update flow (runbook §7): ``pyinfra inventory.py deploys/update.py``.

Fetches ``repo_branch``, moves the checkout to it, syncs the environment when the commit
changed, restarts the services once and waits for ``/health``. Local changes on the server
stop the run (listed); ``--data repo_discard_local_changes=True`` discards them. ``--dry``
shows what would happen.
"""

from deploys import container

container.update()
