"""Proxmox VE side of the deploy: API client (:mod:`.client`) and conf-file edits (:mod:`.conf`)."""
