# egograph-deploy. Every target installs what it needs; run as root on Debian/Ubuntu.
SHELL := /bin/bash
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
HOSTS_FILE := /var/lib/egograph-sandbox/hosts.json
PYTEST_ARGS ?=

.PHONY: deps test test-unit test-e2e demo demo-down drift lint fmt docs bench

# Host packages for the sandbox, uv (from the package index when missing), the project env.
deps:
	@missing=$$(for p in python3 python3-venv debootstrap systemd-container iproute2 iptables \
	    openssh-client git curl ca-certificates gnupg gpgv; do \
	    dpkg-query -W -f='$${db:Status-Abbrev}' $$p 2>/dev/null | grep -q '^ii' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing: $$missing"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi
	@if [ ! -x "$(UV)" ]; then python3 -m venv .tools && .tools/bin/pip install -q uv==$(UV_VERSION); fi
	@$(UV) sync --locked --quiet --compile-bytecode
	@# Bytecode for the project's own modules too: without it every pyinfra run compiles
	@# ~750 modules (0.5 s) where PYTHONDONTWRITEBYTECODE is set, as on CI machines.
	@$(UV) run --no-sync python -m compileall -q deploys inventory.py group_data >/dev/null
	@# The sandbox's real components, built once per pinned version and cached under
	@# /var/cache/egograph-sandbox: the Debian root, tailscale/tailscaled and headscale from
	@# their Go modules (a few minutes the first time), the signed Tailscale repository.
	@if [ "$$(id -u)" = 0 ]; then $(UV) run --no-sync python -m tests.sandbox build; \
	else echo "make deps: not root, the sandbox (e2e tests, demo) is not built"; fi

# pytest exits 5 when it collected nothing: say so, and fail (a run that tested nothing
# is not a pass).
test: deps
	@$(UV) run pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc

test-unit: deps
	$(UV) run pytest -m "not e2e" $(PYTEST_ARGS)

test-e2e: deps
	$(UV) run pytest -m e2e $(PYTEST_ARGS)

# The whole deploy from nothing: an EMPTY emulated Proxmox node (API emulator backed by
# sandbox containers, the node's sshd); one pyinfra run creates the container, patches TUN,
# starts it and converges everything inside.
demo: deps
	$(UV) run python -m tests.sandbox pve-up
	EGOGRAPH_HOSTS_FILE=$(HOSTS_FILE) $(UV) run pyinfra -y inventory.py deploys/prod.py
	@echo
	@$(UV) run --no-sync python -m tests.sandbox demo-check
	@echo "Again, showing zero changes:  EGOGRAPH_HOSTS_FILE=$(HOSTS_FILE) $(UV) run pyinfra -y inventory.py deploys/prod.py"
	@echo "Destroy the container:        EGOGRAPH_HOSTS_FILE=$(HOSTS_FILE) $(UV) run pyinfra -y inventory.py deploys/destroy.py"
	@echo "A shell in it (the host key the deploy pinned): ssh -i /var/lib/egograph-sandbox/ssh/id_ed25519 -o UserKnownHostsFile=/var/lib/egograph-sandbox/pve/containers.known_hosts root@$$(awk '{print $$1; exit}' /var/lib/egograph-sandbox/pve/containers.known_hosts)"
	@echo "Tear down:                    make demo-down"

demo-down: deps
	$(UV) run python -m tests.sandbox down

# Drift check against the hosts file (the demo's by default): 0 in sync, 2 drift, 1 failed.
drift: deps
	EGOGRAPH_HOSTS_FILE=$${EGOGRAPH_HOSTS_FILE:-$(HOSTS_FILE)} $(UV) run egodeploy drift

lint: deps
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy

fmt: deps
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

docs: deps
	$(UV) run python -m deploys.docs

bench: deps
	$(UV) run python -m bench
