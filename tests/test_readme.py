"""README's shell blocks as a new user copies them: each command runs in the environment the
install sets up (`.venv`, made by `make`), and each line is one command."""
from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = ("python", "python3", "pip", "partsight", "main.py")  # what the install puts in .venv/bin


def _shell_lines() -> list[str]:
    """The commands of README's ```sh blocks: comments dropped, continuation lines joined."""
    blocks = re.findall(r"^```sh\n(.*?)^```", (REPO / "README.md").read_text(), flags=re.M | re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    return [line.split(" #")[0].strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _program(line: str) -> str:
    """The line's program: its first word after VAR=value assignments."""
    words = shlex.split(line, comments=True)
    return next(word for word in words if not re.match(r"^[A-Z_]+=", word))


def test_readme_commands_run_from_the_installed_environment():
    """`python main.py eval ...` copied as written ran the system python (ModuleNotFoundError:
    platformdirs); every block says `.venv/bin/...` as the usage block does."""
    lines = _shell_lines()
    assert len(lines) > 20
    bare = [line for line in lines
            if Path(_program(line)).name in PROGRAMS and not _program(line).startswith(".venv/bin/")]
    assert not bare, bare


def test_readme_pipes_are_pipes_into_programs():
    """`weights list | verify | fetch NAME` read as a shell pipe into programs that do not exist;
    a pipe in a block is a real one, into a program (`| head`), never between a command's
    alternatives (those are written out, or in brackets: `[--labels pascal-person-part|lip]`)."""
    for line in _shell_lines():
        for part in re.sub(r"\[[^\]]*\]", "", line).split("|")[1:]:
            program = part.split()[0]
            assert shutil.which(program) or (REPO / program).is_file(), line
