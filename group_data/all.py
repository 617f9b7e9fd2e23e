"""This site's settings: only what differs from the defaults.

Every setting is declared once, with its default (the runbook's value), form and meaning,
beside the deploy that uses it (deploys/<concern>/settings.py); the README's settings tables
list them all. Set a site-wide value here, a per-host one in the hosts file
(EGOGRAPH_HOSTS_FILE), or one for a single run with `pyinfra --data name=value`. An unknown
name is refused with the nearest known one. Secrets never go here: env file contents come
from the controller (a local 0600 file or environment variables), see
`services[*].env_source`; the Tailscale key and the PVE token likewise.

For example, a site behind its own Proxmox node, with Tailscale's keyring pinned:

    pve_host = "pve.example.lan"
    pve_ca_bundle = "secrets/pve-root-ca.pem"
    ct_ip = "192.168.1.50/24"
    ct_gw = "192.168.1.1"
    tailscale_keyring_sha256 = "<sha256sum of the keyring you verified, see README Tailscale>"
"""
