"""README.ja.md (the Japanese quick start) shows only commands the English README has: the
English one is the reference, and a command renamed there must not live on here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def shell_commands(markdown: str) -> list[str]:
    """Every command line of the ```sh blocks, without a trailing comment."""
    commands = []
    for block in re.findall(r"```(?:sh|bash)\n(.*?)```", markdown, re.S):
        for line in block.splitlines():
            command = re.split(r"\s{2,}#|^#", line.strip(), maxsplit=1)[0].strip()
            if command:
                commands.append(command)
    return commands


def _spaces(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_every_command_of_the_japanese_readme_is_in_the_english_one() -> None:
    english = _spaces((ROOT / "README.md").read_text())
    commands = shell_commands((ROOT / "README.ja.md").read_text())
    assert len(commands) >= 20, commands
    missing = [c for c in commands if _spaces(c) not in english]
    assert not missing, f"README.ja.md commands not in README.md: {missing}"


def test_the_readmes_link_each_other() -> None:
    assert "(README.ja.md)" in (ROOT / "README.md").read_text()
    assert "(README.md)" in (ROOT / "README.ja.md").read_text()


def test_shell_commands_drops_comments_and_blank_lines() -> None:
    text = "```sh\n# only a comment\nmake demo    # the demo\n\nexport A=b\n```\n"
    assert shell_commands(text) == ["make demo", "export A=b"]
