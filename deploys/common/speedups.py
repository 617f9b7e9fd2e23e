"""Two per-operation costs of pyinfra 3.10's CLI mode, removed without changing its results.

Measured on the sandbox (no-op run of ``deploys/prod.py``, 12 operations per host, 8 hosts:
96 operation calls, controller CPU 0.86 s):

- **Operation order.** pyinfra orders operations by the line numbers of the calls that led
  to them (``pyinfra.api.util.get_operation_order_from_stack``), read with
  ``inspect.stack()``, which looks up every frame's module and source lines (and for a file
  pyinfra ``exec``\\ s, such as the deploy file, scans all of ``sys.modules``): 2.8 ms per
  operation call, 0.27 s in all. The line numbers are the frames' own ``f_lineno``;
  :func:`operation_order_from_stack` walks the frames for the same list.
- **Global arguments.** Every operation call evaluates the type hints of pyinfra's
  ``AllArguments`` class again (``all_global_arguments``): 0.35 ms each, 0.1 s in all. They
  are constant; :func:`evaluated_global_arguments` evaluates them once.

:func:`install` swaps both in for the exact pyinfra versions whose functions these reproduce
(``VERIFIED``: ``tests/unit/common/test_speedups.py`` compares them with the originals of the
installed version, and fails when that version is not listed), and leaves pyinfra's own for
any other version: a patch release that changed the ordering could otherwise reorder the
operations, and order is what puts the Proxmox stage first. One log line says which.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from importlib import import_module
from types import FrameType
from typing import Any

import pyinfra
from pyinfra.api.util import PYINFRA_INSTALL_DIR

VERIFIED = ("3.10.0",)
"""pyinfra versions the comparison test has passed on."""
logger = logging.getLogger("pyinfra")


def operation_order_from_stack(state: Any) -> list[int]:
    """``pyinfra.api.util.get_operation_order_from_stack`` from the frames themselves: the
    line numbers of the calls from the deploy file down to the operation, pyinfra's own
    frames left out, behind the number of the deploy file being run."""
    frames: list[FrameType] = []
    frame: FrameType | None = sys._getframe(1)  # the caller (this frame is not pyinfra's)
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()
    i = 0
    if state.current_deploy_filename:
        # Not on the stack: pyinfra's loop stops at its own frame, the last, which it skips.
        i = next(
            (
                k
                for k, f in enumerate(frames)
                if f.f_code.co_filename == state.current_deploy_filename
            ),
            len(frames),
        )
    line_numbers = []
    if pyinfra.is_cli:
        line_numbers.append(state.current_op_file_number)
    for frame in frames[i:]:
        if frame.f_code.co_filename.startswith(PYINFRA_INSTALL_DIR):
            continue
        line_numbers.append(frame.f_lineno)
    return line_numbers


def evaluated_global_arguments() -> Callable[[], list[tuple[str, type]]]:
    """``pyinfra.api.arguments.all_global_arguments``, with the type hints evaluated once,
    now (a new list each call, as pyinfra's)."""
    arguments = import_module("pyinfra.api.arguments")
    hints = tuple(arguments.get_type_hints(arguments.AllArguments).items())
    return lambda: list(hints)


def install() -> bool:
    """Use both for a verified pyinfra version; return whether they were installed."""
    if pyinfra.__version__ not in VERIFIED:
        logger.info(
            f"pyinfra {pyinfra.__version__} is not one the deploy's speedups were verified "
            f"on ({', '.join(VERIFIED)}): pyinfra's own operation ordering runs"
        )
        return False
    logger.debug(f"pyinfra {pyinfra.__version__}: the deploy's verified speedups are in use")
    # By module path: the attribute ``pyinfra.api.operation`` is the decorator.
    setattr(  # noqa: B010 (mypy does not know these module attributes)
        import_module("pyinfra.api.operation"),
        "get_operation_order_from_stack",
        operation_order_from_stack,
    )
    setattr(  # noqa: B010
        import_module("pyinfra.api.arguments"),
        "all_global_arguments",
        evaluated_global_arguments(),
    )
    return True
