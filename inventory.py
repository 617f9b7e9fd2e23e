"""Inventory: the production container, or the hosts in $EGOGRAPH_HOSTS_FILE.

    pyinfra inventory.py deploys/prod.py                 # egograph-prod ($EGOGRAPH_HOST)
    EGOGRAPH_HOSTS_FILE=hosts.json pyinfra inventory.py deploys/prod.py

Settings are validated here, before pyinfra connects to anything.
"""

from deploys.common import speedups
from deploys.inventory import load_hosts
from deploys.runlock import tag_commands

speedups.install()
tag_commands()  # a rerun waits for the commands a killed run left running (deploys.runlock)
egograph = load_hosts(__file__)
