"""Shell pieces more than one operation runs: a pinned download, an atomic one-line file,
the bounded wait for a health URL, and a long command's progress lines."""

from __future__ import annotations

import shlex

from pyinfra.api import QuoteString, StringCommand

from .progress import EVERY, MAX_LINE


def download_pinned(url: str, dest: str, pin: str, *, setting: str, rotated: str) -> StringCommand:
    """Download ``url`` next to ``dest`` and move it in only when its SHA-256 is ``pin``
    (the value of ``setting``): a failed download or another digest leaves neither ``dest``
    nor the temporary file, and says what was downloaded. ``rotated`` tells what to do when
    the upstream key really changed."""
    directory = dest.rsplit("/", 1)[0] or "/"
    tmp = QuoteString(f"{dest}.egograph-deploy.tmp")
    mismatch = (
        f"the keyring at {url} does not match {setting} = {pin}; refusing it (nothing was "
        f"changed). {rotated} Downloaded SHA-256:"
    )
    return StringCommand(
        "mkdir -p -m 755",
        QuoteString(directory),
        "&& rm -f",
        tmp,
        "&& if ! curl -fsSL --retry 3 -o",
        tmp,
        QuoteString(url),
        "; then rm -f",
        tmp,
        "; echo",
        QuoteString(f"cannot download {url}"),
        ">&2; exit 1; fi; got=$(sha256sum <",
        tmp,
        '| cut -c1-64); if [ "$got" != ',
        QuoteString(pin),
        " ]; then rm -f",
        tmp,
        "; echo",
        QuoteString(mismatch),
        '"$got" >&2; exit 1; fi; chmod 644',
        tmp,
        "&& mv -f",
        tmp,
        QuoteString(dest),
    )


def write_line(path: str, line: str) -> StringCommand:
    """``path`` holds exactly ``line`` (mode 644), written next to it and renamed in."""
    tmp = f"{path}.egograph-deploy.tmp"
    return StringCommand(
        "printf",
        "'%s\\n'",
        QuoteString(line),
        ">",
        QuoteString(tmp),
        "&&",
        "chmod",
        "644",
        QuoteString(tmp),
        "&&",
        "mv",
        "-f",
        QuoteString(tmp),
        QuoteString(path),
    )


def wait_healthy_function(health_url: str, timeout: int, interval: float = 0.2) -> str:
    """A shell function ``wait_healthy`` that polls ``health_url`` until it answers 200, for
    at most ``timeout`` seconds (returns 1 then)."""
    return f"""\
wait_healthy() {{
  deadline=$(( $(date +%s) + {int(timeout)} ))
  until curl -fsS -o /dev/null --max-time 5 {shlex.quote(health_url)} 2>/dev/null; do
    [ "$(date +%s)" -ge "$deadline" ] && return 1
    sleep {interval}
  done
}}"""


def wait_unit_ready_function(timeout: int, interval: float = 0.2) -> str:
    """A shell function ``wait_ready UNIT URL`` that polls ``URL`` until it answers 200 and,
    between polls, asks systemd about ``UNIT``: a process that exited (``SubState``
    ``auto-restart``, ``NRestarts`` above 0: systemd resets it on a manual (re)start),
    a unit that failed or stopped ends the wait at once, with ``$why`` saying which, instead
    of after ``timeout`` seconds. A release that crashes at import is thus rolled back
    within a poll of its exit."""
    return f"""\
prop() {{ printf '%s\\n' "$props" | sed -n "s/^$1=//p"; }}
wait_ready() {{
  deadline=$(( $(date +%s) + {int(timeout)} ))
  why=""
  until curl -fsS -o /dev/null --max-time 5 "$2" 2>/dev/null; do
    props=$(systemctl show -p ActiveState -p SubState -p NRestarts -p Result \\
      -p ExecMainStatus -- "$1" 2>/dev/null)
    exited="it exited (status $(prop ExecMainStatus), result $(prop Result))"
    case "$(prop ActiveState)/$(prop SubState)" in
      failed/*) why="$1 failed: $exited"; return 1 ;;
      */auto-restart*) why="$1 is crash-looping: $exited; systemd would restart it"; return 1 ;;
      inactive/*|deactivating/*) why="$1 stopped: $exited"; return 1 ;;
    esac
    if [ "$(prop NRestarts)" -gt 0 ] 2>/dev/null; then
      why="$1 is crash-looping: systemd restarted it $(prop NRestarts) time(s)"; return 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      why="$1 did not answer 200 on $2 within {int(timeout)}s"; return 1
    fi
    sleep {interval}
  done
}}"""


def with_heartbeat(command: str, what: str, every: int = EVERY) -> str:
    """Shell (for the top level of a script) that runs ``command`` with its output to a
    temporary file and, while it runs, prints on stdout every ``every`` seconds
    ``<what>: <n> s, <the newest line it wrote>`` (:func:`.progress.progress_line`'s form:
    printable ASCII only, a URL's credentials masked, cut to :data:`.progress.MAX_LINE`).
    Once it ends, ``$rc`` is its exit status and, when that is not 0, its output goes to
    stderr (as it would have without the file). A command that ends within ``every``
    seconds prints nothing more than it did.

    The printing loop is a background subshell, killed when ``command`` ends, so the end is
    never delayed by its sleep; the sleep has no hold on the output (a stray one would keep
    the SSH channel open until it ends), and the loop stops by itself when the script is
    gone (``kill -0 $$``)."""
    return f"""\
hb_log=$(mktemp "${{TMPDIR:-/tmp}}/egograph-progress.XXXXXX") || exit 1
hb_start=$(date +%s)
(
  while sleep {int(every)} </dev/null >/dev/null 2>&1 && kill -0 $$ 2>/dev/null; do
    hb_last=$(tail -n 1 "$hb_log" 2>/dev/null | LC_ALL=C tr -cd '\\40-\\176' | \\
      cut -c1-{MAX_LINE} | sed 's#://[^/@ ]*@#://***@#g')
    printf '%s: %s s%s\\n' {shlex.quote(what)} "$(( $(date +%s) - hb_start ))" \\
      "${{hb_last:+, $hb_last}}"
  done
) &
hb_pid=$!
(
{command}
) >"$hb_log" 2>&1
rc=$?
kill "$hb_pid" 2>/dev/null
[ "$rc" -eq 0 ] || cat "$hb_log" >&2
rm -f "$hb_log"
"""
