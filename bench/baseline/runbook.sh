#!/bin/bash
# The runbook's in-container steps (§2 packages, Tailscale and uv, §3 checkout and env file,
# §4 `uv sync` and DuckDB httpfs, §5 systemd, §2/§9 `tailscale serve`) as one plain shell
# script: the shell baseline of `make bench`. It runs over ONE ssh session:
#
#     ssh -F <sandbox ssh config> <container> bash -s < (settings + this file)
#
# Every step is guarded by an `if` check, so a second run is a no-op that only looks (the
# "reasonable idempotent shell"). Each step that changes something prints `CHANGED <step>`;
# the harness counts those lines (a no-op run must print none).
#
# The harness prepends the settings as shell variables (taken from the deploy's own validated
# settings, so both do the same work): APT_PACKAGES, TS_ENABLED, TS_REPO_URL,
# TS_KEYRING_SHA256, TS_HOSTNAME, TS_AUTHKEY_B64, TS_LOGIN_SERVER, TS_SERVE_SCHEME,
# TS_SERVE_PORT, TS_SERVE_TARGET,
# UV_VERSION, UV_PATH, UV_URL, UV_SHA256, UVX_SHA256, UV_ENV, PROFILE, REPO_URL, REPO_BRANCH,
# REPO_PATH, ENV_FILE, ENV_B64, DUCKDB_EXTENSIONS, DUCKDB_REPOSITORY, UNIT, UNIT_B64,
# HEALTH_URL, HEALTH_TIMEOUT.
#
# Differences from the deploy, on purpose (this is what a careful person would write by
# hand): uv comes from the sandbox's HTTP server (checked against the wheel's sha256) where
# the deploy pushes the same binaries over SFTP; one service only; no dry run, no drift
# report, no rollback.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
changed() { echo "CHANGED $*"; }
apt_get() { apt-get -q -y -o DPkg::Lock::Timeout=300 "$@" >/dev/null; }
installed() { dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | grep -q '^ii'; }
sha_of() { sha256sum < "$1" 2>/dev/null | cut -c1-64; }
b64_sha() { printf '%s' "$1" | base64 -d | sha256sum | cut -c1-64; }

# Parsed whole before it runs, and with stdin closed: nothing below can eat the rest of the
# script from the ssh session's stdin.
main() {
    restart=0

    # --- §2 system packages: apt update, apt install -y git curl -----------------------------
    missing=""
    for p in $APT_PACKAGES; do installed "$p" || missing="$missing $p"; done
    if [ -n "$missing" ]; then
        apt_get update
        # shellcheck disable=SC2086
        apt_get install --no-install-recommends $missing
        changed "apt install$missing"
    fi

    # --- §2 Tailscale: signed apt repository, tailscaled, tailscale up ------------------------
    if [ "$TS_ENABLED" = 1 ]; then
        # shellcheck disable=SC1091
        . /etc/os-release
        codename=${UBUNTU_CODENAME:-$VERSION_CODENAME}
        keyring=/usr/share/keyrings/tailscale-archive-keyring.gpg
        list=/etc/apt/sources.list.d/tailscale.list
        if [ "$(sha_of "$keyring")" != "$TS_KEYRING_SHA256" ]; then
            mkdir -p /usr/share/keyrings
            curl -fsSL --retry 3 -o "$keyring.tmp" "$TS_REPO_URL/$ID/$codename.noarmor.gpg"
            [ "$(sha_of "$keyring.tmp")" = "$TS_KEYRING_SHA256" ] || { echo "keyring mismatch" >&2; exit 1; }
            mv -f "$keyring.tmp" "$keyring"
            changed "tailscale keyring"
        fi
        line="deb [signed-by=$keyring] $TS_REPO_URL/$ID $codename main"
        ts_update=0
        if [ "$(cat "$list" 2>/dev/null)" != "$line" ]; then
            printf '%s\n' "$line" > "$list"
            ts_update=1
            changed "tailscale apt source"
        fi
        if ! installed tailscale; then
            apt_get update
            apt_get install --no-install-recommends tailscale
            changed "apt install tailscale"
        elif [ "$ts_update" = 1 ]; then
            apt_get update
        fi
        if ! systemctl is-enabled --quiet tailscaled; then
            systemctl enable --quiet tailscaled
            changed "tailscaled enabled"
        fi
        if ! systemctl is-active --quiet tailscaled; then
            systemctl start tailscaled
            changed "tailscaled started"
        fi
        if ! tailscale status --json --peers=false 2>/dev/null | grep -q '"BackendState": "Running"'; then
            key=/run/bench-tailscale-authkey
            (umask 077 && printf '%s' "$TS_AUTHKEY_B64" | base64 -d > "$key")
            rc=0
            timeout 120 tailscale up --reset --auth-key="file:$key" --hostname="$TS_HOSTNAME" \
                ${TS_LOGIN_SERVER:+--login-server="$TS_LOGIN_SERVER"} >/dev/null || rc=$?
            rm -f "$key"
            [ "$rc" = 0 ] || exit "$rc"
            changed "tailscale up"
        fi
    fi

    # --- §2 uv into ~/.local/bin, on PATH in ~/.profile --------------------------------------
    uv_dir=${UV_PATH%/*}
    if [ "$("$UV_PATH" --version 2>/dev/null | cut -d' ' -f1-2)" != "uv $UV_VERSION" ]; then
        mkdir -p "$uv_dir"
        for pair in "uv:$UV_SHA256" "uvx:$UVX_SHA256"; do
            name=${pair%%:*}
            curl -fsS --retry 3 -o "$uv_dir/$name.tmp" "$UV_URL/$name"
            [ "$(sha_of "$uv_dir/$name.tmp")" = "${pair#*:}" ] || { echo "$name sha256 mismatch" >&2; exit 1; }
            chmod 755 "$uv_dir/$name.tmp"
            mv -f "$uv_dir/$name.tmp" "$uv_dir/$name"
        done
        changed "uv $UV_VERSION"
    fi
    path_line="export PATH=\"$uv_dir:\$PATH\""
    if ! grep -qxF -- "$path_line" "$PROFILE" 2>/dev/null; then
        printf '%s\n' "$path_line" >> "$PROFILE"
        changed "PATH in $PROFILE"
    fi

    # --- §3 checkout (§7's fetch + reset --hard when the branch moved) -----------------------
    if [ ! -d "$REPO_PATH/.git" ]; then
        mkdir -p "${REPO_PATH%/*}"
        git clone --quiet --branch "$REPO_BRANCH" -- "$REPO_URL" "$REPO_PATH"
        restart=1
        changed "git clone"
    else
        remote=$(git ls-remote -- "$REPO_URL" "refs/heads/$REPO_BRANCH" | cut -f1)
        if [ "$(git -C "$REPO_PATH" rev-parse HEAD)" != "$remote" ]; then
            git -C "$REPO_PATH" fetch --quiet origin "$REPO_BRANCH"
            git -C "$REPO_PATH" reset --quiet --hard "origin/$REPO_BRANCH"
            restart=1
            changed "git reset to origin/$REPO_BRANCH"
        fi
    fi

    # --- §3 env file (0600) -------------------------------------------------------------------
    if [ "$(sha_of "$ENV_FILE")" != "$(b64_sha "$ENV_B64")" ] \
        || [ "$(stat -c %a "$ENV_FILE" 2>/dev/null)" != 600 ]; then
        mkdir -p "${ENV_FILE%/*}"
        (umask 077 && printf '%s' "$ENV_B64" | base64 -d > "$ENV_FILE.tmp")
        chmod 600 "$ENV_FILE.tmp"
        mv -f "$ENV_FILE.tmp" "$ENV_FILE"
        restart=1
        changed "env file"
    fi

    # --- §4 uv sync --all-packages, DuckDB httpfs ---------------------------------------------
    cd "$REPO_PATH"
    # shellcheck disable=SC2086
    if ! env $UV_ENV "$UV_PATH" sync --all-packages --locked --check >/dev/null 2>&1; then
        # shellcheck disable=SC2086
        env $UV_ENV "$UV_PATH" sync --all-packages --locked --no-progress --quiet
        restart=1
        changed "uv sync"
    fi
    # One python per extension: INSTALL ... FROM the repository unless duckdb_extensions()
    # already lists it as installed.
    duckdb_py='import sys, duckdb
ext, repo = sys.argv[1], sys.argv[2]
con = duckdb.connect()
row = con.execute("select installed from duckdb_extensions() where extension_name = ?", [ext]).fetchone()
if not (row and row[0]):
    con.execute(f"INSTALL {ext} FROM {chr(39)}{repo}{chr(39)}" if repo else f"INSTALL {ext}")
    print(f"CHANGED duckdb {ext}")'
    for ext in $DUCKDB_EXTENSIONS; do
        "$REPO_PATH/.venv/bin/python" -c "$duckdb_py" "$ext" "$DUCKDB_REPOSITORY"
    done

    # --- §5 systemd unit, enabled, running, healthy --------------------------------------------
    unit_file=/etc/systemd/system/$UNIT.service
    if [ "$(sha_of "$unit_file")" != "$(b64_sha "$UNIT_B64")" ]; then
        printf '%s' "$UNIT_B64" | base64 -d > "$unit_file.tmp"
        chmod 644 "$unit_file.tmp"
        mv -f "$unit_file.tmp" "$unit_file"
        systemctl daemon-reload
        restart=1
        changed "unit file"
    fi
    if ! systemctl is-enabled --quiet "$UNIT"; then
        systemctl enable --quiet "$UNIT"
        changed "$UNIT enabled"
    fi
    if ! systemctl is-active --quiet "$UNIT"; then
        systemctl start "$UNIT"
        changed "$UNIT started"
    elif [ "$restart" = 1 ]; then
        systemctl restart "$UNIT"
        changed "$UNIT restarted"
    fi
    deadline=$(($(date +%s) + HEALTH_TIMEOUT))
    until curl -fsS -o /dev/null --max-time 5 "$HEALTH_URL" 2>/dev/null; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "$UNIT is not healthy" >&2; exit 1; }
        sleep 0.2
    done

    # --- §2/§9 tailscale serve --bg -----------------------------------------------------------
    if [ "$TS_ENABLED" = 1 ]; then
        if ! tailscale serve status --json 2>/dev/null | grep -qF "\"$TS_SERVE_TARGET\""; then
            tailscale serve --bg --"$TS_SERVE_SCHEME"="$TS_SERVE_PORT" "$TS_SERVE_TARGET" >/dev/null
            changed "tailscale serve"
        fi
    fi
    echo "DONE"
}
main </dev/null
