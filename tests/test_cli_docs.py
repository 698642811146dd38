"""Every command is documented: help text, an example in it, and a README section.

Walks every command registered on the typer app (all layers), so a new command without docs
fails here rather than in a user's terminal.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from aksnap.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"


def _commands() -> dict[str, object]:
    group = typer.main.get_command(app)
    return dict(sorted(group.commands.items()))


COMMANDS = _commands()


def test_there_are_commands_to_check():
    assert {"analyze", "lineage", "blockers", "critical-path", "task", "check", "sql", "query",
            "queries"} <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_has_help_text(name):
    help_text = (COMMANDS[name].help or "").strip()
    assert help_text, f"`aksnap {name}` has no help text: give its function a docstring"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_help_has_an_example(name):
    help_text = COMMANDS[name].help or ""
    assert re.search(rf"Example:\s*aksnap {re.escape(name)}\b", help_text), (
        f"`aksnap {name}` has no example: add a line 'Example: aksnap {name} ...' to its help")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_command_is_in_the_readme(name):
    assert re.search(rf"aksnap {re.escape(name)}\b", README.read_text()), (
        f"`aksnap {name}` is missing from README.md: add it to its layer's section")
