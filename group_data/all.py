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
duckdb_extension_directory = ""
duckdb_extension_repository = ""

# --- Services (runbook §5) ---
services = [
    {
        "name": "backend",
        "unit": "egograph-backend",
        "description": "EgoGraph Backend",
        "module": "backend.main:app",
        "host": "127.0.0.1",
        "port": 8000,
        "working_dir": "",
        "env_file": "backend/.env",
        "env_source": {"file": "secrets/backend.env"},
        "health_path": "/health",
        "user": "root",
        "group": "root",
    },
]
service_health_timeout = 60
service_restart_sec = 10
