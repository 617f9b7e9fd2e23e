"""What an inventory host is for: the Proxmox node, or (no role) the container."""

ROLE = "egograph_role"
"""Host data key: ``NODE_ROLE`` for the Proxmox node; absent for the container."""
NODE_ROLE = "pve-node"
