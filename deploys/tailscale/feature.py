"""The control server's answer to the HTTPS feature query (see ``TailscaleNode``), read from
the lines curl printed: pure, shared by the fact and its tests."""

from __future__ import annotations

import json
from typing import Any


def feature_answer(output: list[str], code: int | None) -> dict[str, Any] | None:
    """``TailscaleNode``'s query-feature section: body lines, then the HTTP status curl
    printed; ``code`` is curl's exit code when it failed (the section's failure marker)."""
    lines = [line for line in output if line.strip()]
    if not lines:
        return None
    if code is not None:
        return {
            "http_status": 0,
            "complete": False,
            "text": "",
            "url": "",
            "error": "could not ask tailscaled (curl exit "
            f"{code}): {' '.join(lines[:-1]).strip() or 'no output'}",
        }
    status_text, body = lines[-1].strip(), "\n".join(lines[:-1]).strip()
    status = int(status_text) if status_text.isdigit() else 0
    answer: dict[str, Any] = {
        "http_status": status,
        "complete": False,
        "text": "",
        "url": "",
        "error": "",
    }
    parsed: Any = None
    if status == 200:
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError:
            parsed = None
    if isinstance(parsed, dict):
        answer.update(
            complete=bool(parsed.get("Complete")),
            text=str(parsed.get("Text") or ""),
            url=str(parsed.get("URL") or ""),
        )
    else:
        answer["error"] = body or "no answer"
    return answer
