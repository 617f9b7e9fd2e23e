"""Facts about DuckDB extensions, read with the app's own Python environment."""

from __future__ import annotations

import json
import shlex
from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand
from pyinfra.api.exceptions import FactProcessError

from ..common.facts import as_list
from ..common.operations import STATE_DIR

# Runs with the venv's python. Autoinstall is off so that reading the fact never installs.
_READ = """
import json, sys
import duckdb
cfg = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
if sys.argv[1]:
    cfg["extension_directory"] = sys.argv[1]
con = duckdb.connect(config=cfg)
rows = con.execute(
    "select extension_name, installed, extension_version, install_path, installed_from "
    "from duckdb_extensions()").fetchall()
print(json.dumps({
    "duckdb": duckdb.__version__,
    "platform": con.execute("pragma platform").fetchone()[0],
    "extensions": {r[0]: {"installed": r[1], "version": r[2], "path": r[3], "from": r[4]}
                   for r in rows},
}))
"""


BUILTIN_PREFIX = "duckdb-builtin-"
"""``<state dir>/duckdb-builtin-<version>-<platform>``: the extensions that DuckDB build
reported as built in (no file to look for), one name per line; written by the install step."""


class DuckdbExtensions(FactBase[dict[str, Any]]):
    """
    DuckDB's version, platform and extensions as the app's environment sees them; ``{}``
    while that environment does not exist yet.

    Without ``expect``: ``duckdb_extensions()`` itself, read with the environment's Python.
    With ``expect`` (what the deploy reads on every run): no Python is started. Each expected
    extension is looked up where DuckDB keeps it
    (``<directory>/v<version>/<platform>/<name>.duckdb_extension``, the version read from
    the environment's duckdb dist-info) or in the list of extensions this DuckDB build has
    built in (``<state_dir>/duckdb-builtin-<version>-<platform>``, written when the install
    step found them so); the ones found nowhere are listed under ``unchecked`` — the install
    step asks DuckDB about those and installs what it lacks.

    .. code:: python

        {
            "duckdb": "1.4.4",
            "platform": "linux_amd64",
            "extensions": {
                "httpfs": {"installed": True, "version": "13f8a81",
                           "path": "/root/.duckdb/extensions/v1.4.4/linux_amd64/httpfs.duckdb_extension",
                           "from": "core"},
            },
            "unchecked": [],    # with expect only
        }
    """

    def command(
        self,
        python: str,
        directory: str,
        expect: str | list[str] = "",
        state_dir: str = STATE_DIR,
    ) -> StringCommand:
        py = QuoteString(python)
        query = StringCommand(
            "if [ -x", py, "]; then", py, "-c", QuoteString(_READ), QuoteString(directory), "; fi"
        )
        wanted = as_list(expect)
        if not wanted:
            return query
        venv = python.rsplit("/bin/", 1)[0]
        q = shlex.quote
        ext_dir = q(directory) if directory else '"$HOME/.duckdb/extensions"'
        builtin = f'{q(state_dir)}/{BUILTIN_PREFIX}"$v-$p"'
        names = " ".join(q(n) for n in wanted)
        # Without a duckdb dist-info (an environment being built by hand?) DuckDB is asked.
        script = f"""\
v=$(ls -d {q(venv)}/lib/python3*/site-packages/duckdb-*.dist-info \
    2>/dev/null | sed -n 's|.*/duckdb-\\(.*\\)\\.dist-info$|\\1|p' | head -n 1)
case "$(uname -m)" in x86_64) p=linux_amd64 ;; aarch64) p=linux_arm64 ;; *) p= ;; esac
if [ ! -x {q(python)} ]; then
  :
elif [ -n "$v" ] && [ -n "$p" ]; then
  printf '{{"duckdb": "%s", "platform": "%s", "extensions": {{' "$v" "$p"
  sep=; unchecked=
  for n in {names}; do
    f={ext_dir}/"v$v/$p/$n.duckdb_extension"
    if [ -f "$f" ]; then
      printf '%s"%s": {{"installed": true, "path": "%s"}}' "$sep" "$n" "$f"; sep=", "
    elif grep -qxF -- "$n" {builtin} 2>/dev/null; then
      printf '%s"%s": {{"installed": true, "path": "(BUILT-IN)"}}' "$sep" "$n"; sep=", "
    else
      unchecked="$unchecked${{unchecked:+, }}\\"$n\\""
    fi
  done
  printf '}}, "unchecked": [%s]}}\\n' "$unchecked"
else
  {query.get_raw_value()}
fi"""
        return StringCommand(script)

    @staticmethod
    def default() -> dict[str, Any]:
        return {}

    def process(self, output: list[str]) -> dict[str, Any]:
        if not output:
            return {}
        try:
            data: dict[str, Any] = json.loads(output[-1])
        except json.JSONDecodeError as exc:
            raise FactProcessError(f"duckdb_extensions(): {exc}: {output[-1]!r}") from exc
        return data
