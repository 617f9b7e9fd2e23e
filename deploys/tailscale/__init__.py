"""Tailscale: apt install, tailscaled, `tailscale up` and `tailscale serve` (runbook §2, §9)."""
