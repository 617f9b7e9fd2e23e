"""``egodeploy logs``: the pure parts (the command, the service lookup)."""

from __future__ import annotations

import pytest

from deploys.logs import LogsError, journal_command, unit_of
from deploys.settings import Settings


def test_the_journal_command_shows_the_last_lines_and_follows_only_when_asked() -> None:
    assert journal_command("egograph-backend", 20, False) == (
        "journalctl --unit egograph-backend.service --lines 20 --no-pager --output short-iso"
    )
    assert journal_command("egograph-backend", 0, True).endswith(
        " --lines 0 --no-pager --output short-iso --follow"
    )


def test_a_service_is_found_by_name_or_unit_and_the_first_one_is_the_default() -> None:
    services = Settings().services
    assert unit_of(services, None) == services[0].unit == "egograph-backend"
    assert unit_of(services, "backend") == "egograph-backend"
    assert unit_of(services, "egograph-backend.service") == "egograph-backend"
    with pytest.raises(
        LogsError,
        match=r"SERVICE 'nope': no such service; expected one of "
        r"backend \(egograph-backend\)",
    ):
        unit_of(services, "nope")
