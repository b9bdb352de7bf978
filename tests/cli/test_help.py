"""Each subcommand's ``--help`` as a person reads it in a terminal: what it does, then examples that parse."""

from __future__ import annotations

import re
import shlex

import pytest

from lightning_tracker.cli import _parser
from tests.helpers import in_terminal

COMMANDS = ("runs", "show", "compare", "hist", "report", "serve", "sync", "demo")


def _screen(raw: bytes) -> list[str]:
    return [line.rstrip("\r") for line in re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", raw).decode().splitlines()]


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("command", COMMANDS)
def test_each_subcommand_help_has_a_description_and_examples(command: str, columns: int) -> None:
    status, raw = in_terminal([command, "--help"], columns)
    lines = _screen(raw)
    assert status == 0 and all(len(line) <= columns for line in lines), lines
    usage_end = next(i for i, line in enumerate(lines) if not line.strip())
    description = lines[usage_end + 1]
    assert description and not description.startswith(("positional", "options")), f"no description: {lines}"
    start = lines.index("examples:")
    examples = [line.strip() for line in lines[start + 1 :] if line.startswith("  lightning-tracker ")]
    assert examples, f"no example under 'examples:' in {lines[start:]}"
    for example in examples:  # each example is a valid command line of this subcommand
        argv = shlex.split(example.split("  #")[0])[1:]
        assert argv[0] == command
        _parser().parse_args(argv)
