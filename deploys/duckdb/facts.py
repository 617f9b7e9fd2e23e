"""Facts about DuckDB extensions, as each service user's DuckDB sees them."""

from __future__ import annotations

import json
import shlex
from typing import Any

from pyinfra.api import FactBase, StringCommand
from pyinfra.api.exceptions import FactProcessError

from ..common.facts import as_list
from ..common.stamps import STATE_DIR

# Runs with the venv's python and the user's HOME: DuckDB's default extension directory is
# ~/.duckdb/extensions, the one the app (which sets none) uses. Autoinstall is off so that
# reading the fact never installs.
_READ = """
import json, sys
import duckdb
user, home = sys.argv[1], sys.argv[2]
out = {"user": user, "home": home or None, "duckdb": duckdb.__version__}
try:
    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    rows = con.execute(
        "select extension_name, installed, extension_version, install_path, installed_from "
        "from duckdb_extensions()").fetchall()
    out["platform"] = con.execute("pragma platform").fetchone()[0]
    out["extensions"] = {r[0]: {"installed": r[1], "version": r[2], "path": r[3], "from": r[4]}
                         for r in rows}
except duckdb.Error as exc:
    out["error"] = str(exc)
print(json.dumps(out))
"""


BUILTIN_PREFIX = "duckdb-builtin-"
"""``<state dir>/duckdb-builtin-<version>-<platform>``: the extensions that DuckDB build
reported as built in (no file to look for), one name per line; written by the install step."""

HOME_OF = 'h=$(getent passwd "$u" | cut -d: -f6)'
"""Shell: the HOME of user ``$u`` into ``$h`` (systemd gives a service the same, from the
user database)."""


class DuckdbExtensions(FactBase[dict[str, Any]]):
    """
    DuckDB's version, platform and, for each user, its HOME and the extensions its DuckDB
    finds there (``~/.duckdb/extensions``, DuckDB's default); ``{}`` while the app's
    environment does not exist yet.

    Without ``expect``: ``duckdb_extensions()`` itself, read with the environment's Python
    once per user, with that user's HOME (``error`` instead when DuckDB cannot read it).
    With ``expect`` (what the deploy reads on every run): no Python is started. Each expected
    extension is looked up where DuckDB keeps it
    (``<HOME>/.duckdb/extensions/v<version>/<platform>/<name>.duckdb_extension``, the
    version read from the environment's duckdb dist-info) or in the list of extensions this
    DuckDB build has built in (``<state_dir>/duckdb-builtin-<version>-<platform>``, written
    when the install step found them so); the ones found nowhere (all of them when the
    version, the platform or the user's HOME is unknown) are listed under ``unchecked`` —
    the install step asks DuckDB about those and installs what it lacks.

    .. code:: python

        {
            "duckdb": "1.4.3",
            "platform": "linux_amd64",
            "users": {
                "egograph": {
                    "home": "/var/lib/egograph",
                    "extensions": {
                        "httpfs": {"installed": True, "path": "/var/lib/egograph/.duckdb/extensions/v1.4.3/linux_amd64/httpfs.duckdb_extension"},
                    },
                    "unchecked": [],    # with expect only
                },
            },
        }
    """

    def command(
        self,
        python: str,
        users: str | list[str] = "root",
        expect: str | list[str] = "",
        state_dir: str = STATE_DIR,
    ) -> StringCommand:
        q = shlex.quote
        who = " ".join(q(u) for u in as_list(users))
        wanted = as_list(expect)
        if not wanted:
            return StringCommand(
                f"if [ -x {q(python)} ]; then for u in {who}; do {HOME_OF}; "
                f'HOME="$h" {q(python)} -c {q(_READ)} "$u" "$h"; done; fi'
            )
        venv = python.rsplit("/bin/", 1)[0]
        builtin = f'{q(state_dir)}/{BUILTIN_PREFIX}"$v-$p"'
        names = " ".join(q(n) for n in wanted)
        script = f"""\
v=$(ls -d {q(venv)}/lib/python3*/site-packages/duckdb-*.dist-info \
    2>/dev/null | sed -n 's|.*/duckdb-\\(.*\\)\\.dist-info$|\\1|p' | head -n 1)
case "$(uname -m)" in x86_64) p=linux_amd64 ;; aarch64) p=linux_arm64 ;; *) p= ;; esac
if [ -x {q(python)} ]; then
  printf '{{"duckdb": "%s", "platform": "%s", "users": {{' "$v" "$p"
  usep=
  for u in {who}; do
    {HOME_OF}
    printf '%s"%s": {{"home": "%s", "extensions": {{' "$usep" "$u" "$h"; usep=", "
    sep=; unchecked=
    for n in {names}; do
      f="$h/.duckdb/extensions/v$v/$p/$n.duckdb_extension"
      if [ -n "$v" ] && [ -n "$p" ] && [ -n "$h" ] && [ -f "$f" ]; then
        printf '%s"%s": {{"installed": true, "path": "%s"}}' "$sep" "$n" "$f"; sep=", "
      elif [ -n "$v" ] && [ -n "$p" ] && grep -qxF -- "$n" {builtin} 2>/dev/null; then
        printf '%s"%s": {{"installed": true, "path": "(BUILT-IN)"}}' "$sep" "$n"; sep=", "
      else
        unchecked="$unchecked${{unchecked:+, }}\\"$n\\""
      fi
    done
    printf '}}, "unchecked": [%s]}}' "$unchecked"
  done
  printf '}}}}\\n'
fi"""
        return StringCommand(script)

    @staticmethod
    def default() -> dict[str, Any]:
        return {}

    def process(self, output: list[str]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for line in output:
            if not line.strip():
                continue
            try:
                data: dict[str, Any] = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FactProcessError(f"DuckDB extensions: {exc}: {line!r}") from exc
            if "users" in data:  # the no-Python check: one object
                for user in data["users"].values():
                    user["home"] = user["home"] or None
                return {
                    **data,
                    "duckdb": data["duckdb"] or None,
                    "platform": data["platform"] or None,
                }
            # duckdb_extensions() itself: one object per user
            user = data.pop("user")
            result.setdefault("duckdb", data.pop("duckdb"))
            result.setdefault("platform", data.pop("platform", None))
            result.setdefault("users", {})[user] = data
        return result
