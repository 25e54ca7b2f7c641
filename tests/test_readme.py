"""Every command README.md shows parses with the flags it uses, and every script it names exists.

The commands themselves run in the other tests (each stage's ``main``) and in CI
(``bash run_demo.sh --smoke``); this test catches a README that drifts from the code.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def split_command(line: str) -> tuple[str, str, list[str]]:
    """-> (kind, target, args): kind is 'py' (script path), 'module' or 'sh'."""
    words = shlex.split(line, comments=True)
    while words and re.match(r"^[A-Z_]+=", words[0]):  # environment assignments
        words.pop(0)
    if words[0] == "source":
        return "source", words[1], []
    if words[0] == "bash":
        return "sh", words[1], words[2:]
    if words[0] == "torchrun":
        i = next(i for i, w in enumerate(words) if w.endswith(".py"))
        return "py", words[i], words[i + 1:]
    assert words[0] == "python", line
    if words[1] == "-m":
        return "module", words[2], words[3:]
    return "py", words[1], words[2:]


COMMANDS = readme_commands()


def test_readme_has_the_two_commands():
    plain = {" ".join(shlex.split(c, comments=True)) for c in COMMANDS}
    assert "bash run_demo.sh" in plain and "bash run_tests.sh" in plain
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash run_tests.sh" in ci and "bash run_demo.sh" in ci


@pytest.mark.parametrize("line", COMMANDS)
def test_readme_command_parses(line):
    kind, target, args = split_command(line)
    if kind == "source":
        return
    if kind == "sh":
        assert (ROOT / target).is_file(), f"README names {target}, which does not exist"
        return
    module = target if kind == "module" else target[: -len(".py")].replace("/", ".")
    assert kind == "module" or (ROOT / target).is_file(), f"README names {target}, which does not exist"
    mod = importlib.import_module(module)
    if kind == "module" and hasattr(mod, "__path__") and importlib.util.find_spec(f"{module}.command"):
        mod = importlib.import_module(f"{module}.command")  # a package whose __main__ runs its command module
    if not hasattr(mod, "build_parser"):
        assert not args, f"{target} has no build_parser to check {args}"
        return
    try:
        mod.build_parser().parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"README command does not parse: {line} (exit {exc.code})")
