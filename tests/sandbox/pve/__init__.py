"""PVE VE API emulator for tests (LXC subset, PVE 8.4 and 9.1 schemas)."""
