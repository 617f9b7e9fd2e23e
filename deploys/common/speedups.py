"""Three per-operation costs of pyinfra 3.10's CLI mode, removed without changing its results.

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
- **Host data of global arguments** (``pop_global_arguments``, on every operation, ``@deploy``
  and fact call): each argument is looked up in ``host.data`` on its own, every lookup calling
  all the data sources again. :func:`popped_global_arguments` calls them once per call.
  Measured 2026-12-03 (no-op run, 1 and 8 sandbox containers, median of 4, controller CPU of
  the pyinfra process): 0.0565 → 0.0285 CPU-s per extra host.

:func:`install` swaps them in for the exact pyinfra versions whose functions these reproduce
(``VERIFIED``: ``tests/unit/common/test_speedups.py`` compares them with the originals of the
installed version, and fails when that version is not listed), and leaves pyinfra's own for
any other version: a patch release that changed the ordering could otherwise reorder the
operations, and order is what puts the Proxmox stage first. One log line says which.
"""

from __future__ import annotations

import copy
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


_ARGUMENTS = import_module("pyinfra.api.arguments")
"""Looked up once: :func:`popped_global_arguments` runs on every operation call."""


def popped_global_arguments(state: Any, host: Any, kwargs: dict[str, Any]) -> tuple[Any, list[str]]:
    """``pyinfra.api.arguments.pop_global_arguments`` with the host's data read once.

    pyinfra looks each of the ~30 global arguments up in ``host.data`` (``HostData``), whose
    every lookup calls its data sources again (the override, host, groups' — merged anew —
    inventory and ``@deploy`` data) and raises ``AttributeError`` for a missing key: for a
    host with none of them set, 30 lookups, ~150 source calls and ~150 exceptions per
    operation call, the largest per-host cost of a no-op run on the controller. Here the
    sources are called once per call, in the same order, and each argument takes the first
    one holding it (shallow-copied, as ``HostData`` does). Nothing changes the sources in
    between: the loop only reads them."""
    arguments = _ARGUMENTS
    config = state.config
    if arguments.ctx_config.isset():
        config = arguments.ctx_config.get()
        assert config is not None
    meta_kwargs: dict[str, Any] = host.current_deploy_kwargs or {}
    sources = [source() if callable(source) else source for source in host.data.datas]
    popped: dict[str, Any] = {}
    found_keys: list[str] = []
    for key, type_ in arguments.all_global_arguments():
        meta = arguments.all_argument_meta[key]
        default: Any = meta.default(config)
        for source in sources:
            if key in source:
                default = copy.copy(source[key])
                break
        if key in kwargs:
            found_keys.append(key)
            value = kwargs.pop(key)
        else:
            value = meta_kwargs.get(key, default)
        if meta.handler:
            value = meta.handler(config, value)
        if value != default:
            arguments.raise_if_bad_type(
                value, type_, arguments.ArgumentTypeError, f"Invalid argument `{key}`:"
            )
        popped[key] = value
    return popped, found_keys


# Where pyinfra calls pop_global_arguments: each module imported it by name.
_POP_USERS = ("pyinfra.api.arguments", "pyinfra.api.deploy", "pyinfra.api.operation",
              "pyinfra.api.facts")  # fmt: skip


def install() -> bool:
    """Use them for a verified pyinfra version; return whether they were installed."""
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
    for module in _POP_USERS:
        setattr(import_module(module), "pop_global_arguments", popped_global_arguments)  # noqa: B010
    return True
