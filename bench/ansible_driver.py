"""Co-process of ``make bench`` that runs ansible-playbook (the Ansible baseline).

Started once as ``uv run --no-project --with ansible-core python -m bench.ansible_driver``
(ansible-core from the package index, never a project dependency), so uv's environment set-up
is paid once and not timed. It reads one JSON request per line on stdin and answers one JSON
line on stdout:

    {"cmd": "version"}                          -> {"version": "2.19.x"}
    {"cmd": "run", "dir", "playbook", "inventory", "vars", "forks"}
                                                -> {"seconds", "rc", "recap", "tail"}

Each run starts cold, like a run from CI: a fresh ControlPersist socket directory, and the
SSH master connections it left are closed after the clock stops.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RECAP = re.compile(r"^(\S+)\s+:\s+(.*)$")


def playbook_command() -> str:
    found = Path(sys.executable).parent / "ansible-playbook"
    return str(found) if found.exists() else shutil.which("ansible-playbook") or "ansible-playbook"


def config(control_dir: Path, forks: int) -> str:
    return (
        "[defaults]\n"
        f"forks = {forks}\n"
        "host_key_checking = True\n"
        "retry_files_enabled = False\n"
        "interpreter_python = /usr/bin/python3\n"
        "[ssh_connection]\n"
        "pipelining = True\n"
        "ssh_args = -o ControlMaster=auto -o ControlPersist=60s\n"
        f"control_path_dir = {control_dir}\n"
    )


def parse_recap(text: str) -> dict[str, dict[str, int]]:
    recap: dict[str, dict[str, int]] = {}
    lines = text.splitlines()
    if "PLAY RECAP" not in text:
        return recap
    start = next(i for i, line in enumerate(lines) if line.startswith("PLAY RECAP"))
    for line in lines[start + 1 :]:
        m = RECAP.match(line.strip())
        if not m:
            continue
        counts = dict(item.split("=", 1) for item in m.group(2).split())
        recap[m.group(1)] = {k: int(v) for k, v in counts.items() if v.isdigit()}
    return recap


def changed_tasks(text: str) -> list[str]:
    """Names of the tasks that reported a change (on any host)."""
    found: list[str] = []
    task = ""
    for line in text.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line[line.index("[") + 1 : line.rindex("]")]
        elif line.startswith("changed: ") and task not in found:
            found.append(task)
    return found


def run(request: dict[str, Any]) -> dict[str, Any]:
    work = Path(request["dir"])
    control = Path(tempfile.mkdtemp(prefix="cp-", dir=work))
    cfg = work / "ansible.cfg"
    cfg.write_text(config(control, int(request["forks"])))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(cfg),
        "ANSIBLE_HOME": str(work / "home"),
        "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [
        playbook_command(),
        "-i",
        request["inventory"],
        "-e",
        f"@{request['vars']}",
        request["playbook"],
    ]
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - start
    for sock in control.iterdir():
        subprocess.run(
            ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "bench"],
            capture_output=True,
            check=False,
        )
    shutil.rmtree(control, ignore_errors=True)
    text = proc.stdout + proc.stderr
    return {
        "seconds": seconds,
        "rc": proc.returncode,
        "recap": parse_recap(proc.stdout),
        "changed_tasks": changed_tasks(proc.stdout),
        "tail": text[-3000:] if proc.returncode else "",
    }


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        if request["cmd"] == "version":
            from ansible.release import __version__

            reply: dict[str, Any] = {"version": __version__}
        else:
            reply = run(request)
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
