"""deploys/common/progress.py: the progress line's form (credentials masked, control
characters dropped, cut) and the throttle, on a fake clock."""

from __future__ import annotations

from deploys.common.progress import EVERY, MAX_LINE, Throttle, progress_line, redact


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_line_names_the_step_the_whole_seconds_and_the_newest_log_line() -> None:
    assert progress_line("CT 100 create", 12.9, "extracting archive") == (
        "CT 100 create: 12 s, extracting archive"
    )
    # nothing logged yet: only the time
    assert progress_line("CT 100 start", 4.0, "") == "CT 100 start: 4 s"
    assert progress_line("CT 100 start", 4.0, "  \r") == "CT 100 start: 4 s"


def test_a_url_with_credentials_is_masked_and_control_characters_dropped() -> None:
    line = "downloading https://deploy:s3cret@mirror.example/t.tar.zst to /var/lib/vz\r"
    assert redact(line) == "downloading https://***@mirror.example/t.tar.zst to /var/lib/vz"
    assert "s3cret" not in progress_line("download", 5, line)
    assert redact("\x1b[32mResolved\x1b[0m 80 packages") == "[32mResolved[0m 80 packages"
    assert len(progress_line("x", 5, "y" * 500)) == len("x: 5 s, ") + MAX_LINE


def test_the_throttle_says_every_few_seconds_never_twice_within_them() -> None:
    clock = Clock()
    throttle = Throttle(EVERY, clock)
    seen = []
    for tick in range(1, 131):  # 13 s, asked every 0.1 s
        clock.now = 100 + tick / 10
        elapsed = throttle.due()
        if elapsed is not None:
            seen.append(round(elapsed, 1))
    assert seen == [4.0, 8.0, 12.0]


def test_a_late_check_does_not_make_the_next_lines_bunch_up() -> None:
    clock = Clock()
    throttle = Throttle(4, clock)
    clock.now += 9.5  # one slow poll: one line, not two
    assert throttle.due() == 9.5
    clock.now += 1
    assert throttle.due() is None
    clock.now += 3
    assert throttle.due() == 13.5
