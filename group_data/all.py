"""Settings for every host, with the runbook's values as defaults.

Each name is described (form, meaning) in deploys/settings.py and in the README's settings
tables. Override per site here, per host in the hosts file (EGOGRAPH_HOSTS_FILE), or for one
run with `pyinfra --data name=value`. Secrets never go here: env file contents come from
the controller (a local file or environment variables), see `services[*].env_source`.
"""

# --- Container (runbook §1) ---
ct_hostname = "egograph-prod"
ct_ostemplate = "ubuntu-24.04-standard_24.04-2_amd64.tar.zst"
ct_cores = 2
ct_memory_mb = 3072
ct_swap_mb = 1024
ct_disk_gb = 40
ct_vmid = 0
ct_storage = "local-lvm"
ct_template_storage = "local"
ct_bridge = "vmbr0"
ct_ip = "dhcp"
ct_gw = ""
ct_nesting = True
ct_onboot = True
ct_ssh_public_keys = ["~/.ssh/id_ed25519.pub"]
ct_tun_method = "raw"
ct_apparmor_unconfined = False
ct_allow_restart = False

# --- Proxmox (runbook §1-2) ---
# pve_host = "" skips the Proxmox stage: the deploy then targets an existing container.
# The token secret comes from the controller (pve_secret_source), never from here.
pve_host = ""
pve_port = 8006
pve_node = ""
pve_token_id = "deploy@pve!egograph"
pve_user = "root@pam"
pve_secret_source = {"environ": "PVE_TOKEN_SECRET"}
pve_ca_bundle = ""
pve_fingerprint = ""
pve_insecure = False
pve_timeout = 30
pve_task_timeout = 600
pve_ssh_host = ""
pve_ssh_port = 22
pve_ssh_user = "root"
pve_ssh_key = ""
pve_ssh_known_hosts = ""
pve_conf_dir = "/etc/pve/lxc"

# --- System packages (runbook §2) ---
apt_packages = ["git", "curl", "ca-certificates"]
apt_cache_time = 86400
apt_lock_timeout = 300

# --- uv (runbook §2, §4) ---
uv_version = "0.13.9"
uv_path = "/root/.local/bin/uv"
uv_install_method = "installer"
uv_installer_url = "https://astral.sh/uv/{version}/install.sh"
uv_wheel_index = ""
uv_profile = "/root/.profile"
uv_environment: dict[str, str] = {}

# --- App repository (runbook §3, §7) ---
repo_url = "https://github.com/endo-ava/ego-graph"
repo_branch = "main"
repo_path = "/opt/egograph/repo"
repo_discard_local_changes = False

# --- DuckDB (runbook §4) ---
duckdb_extensions = ["httpfs"]
duckdb_extension_repository = ""

# --- Services (runbook §5) ---
# The app's layout: the uv workspace member egograph/backend is the package `backend`, with
# its env file beside it. A second service (pipelines) is in the README.
services = [
    {
        "name": "backend",
        "unit": "egograph-backend",
        "description": "EgoGraph Backend",
        "module": "backend.main:app",
        "factory": False,
        "host": "127.0.0.1",
        "port": 8000,
        "working_dir": "",
        "env_file": "egograph/backend/.env",
        "env_source": {"file": "secrets/backend.env"},
        "health_path": "/health",
        "user": "root",
        "group": "root",
        "publish": "https",
        "publish_port": 0,
    },
]
env_files_managed = True
service_health_timeout = 60
service_restart_sec = 10
service_hardening = False

# --- Tailscale (runbook §2, §9) ---
tailscale_enabled = True
tailscale_repo_url = "https://pkgs.tailscale.com/stable"
tailscale_keyring_url = ""
# Pin this to the keyring you verified (see README "Tailscale"); '' makes the deploy stop and
# say how to get it, it never installs from an unverified key.
tailscale_keyring_sha256 = ""
tailscale_version = ""
tailscale_hostname = ""
tailscale_extra_up_flags: list[str] = []
tailscale_authkey_source = {"environ": "TS_AUTHKEY"}
tailscale_login_server = ""
tailscale_userspace = False
tailscale_serve = True
tailscale_funnel = False
tailscale_serve_reset_foreign = False

# --- Docker (runbook §8) ---
# deploys/docker.py: the app as a container on a VM, instead of the LXC deploy.
docker_install_method = "distro"
docker_repo_url = "https://download.docker.com/linux/debian"
docker_repo_keyring_sha256 = ""
docker_base_image = "python:3.12-slim"
docker_image_name = "egograph-backend"
docker_dockerfile = "Dockerfile"
docker_host_port = 8000
docker_container_port = 8000
docker_env_file = "/etc/egograph/backend.env"
docker_restart_policy = "unless-stopped"
