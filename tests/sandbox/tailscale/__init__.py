"""Tailscale stand-in: a python3 tailscale/tailscaled pair packaged as a signed apt repository.

``pkg/`` holds the package sources, ``build.py`` builds the .deb and the repository.
"""
