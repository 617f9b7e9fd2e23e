"""``egodeploy preflight``: what a deploy needs, checked before anything changes.

- :mod:`.checks`: the checks on the controller (secrets present and 0600, SSH keys, the
  API's TLS settings, the Tailscale keyring pin), pure, with the settings validation's own
  check functions; the text rendering
- :mod:`.proxmox`: the API with TLS verified, the token's privileges for this run, the
  node's SSH, the template storage
- :mod:`.run`: every target's checks in a deploy's order, and ``repo_url`` on the target
"""
