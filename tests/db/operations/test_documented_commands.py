"""The commands README.md and docs/ show still work.

Shell blocks marked `sh runnable` run against a database of the test's own. Every other
command the pages show, in a shell block or as inline code, is checked against the
project: its make target, its `flask db` command, its Python module, its script or SQL
file, the API route or local provider route it calls.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from api.resources import resources_of
from app import create_app
from commands.database import db_group
from commands.users import users_group
from provider.app import create_app as create_provider

ROOT = Path(__file__).resolve().parents[3]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "deploy/README.md"]
_FENCE = re.compile(r"^( *)```(?:sh|bash|shell)([^\n]*)\n(.*?)^\1```", re.S | re.M)
# Inline code that is a command (an inline path is a name, not a command).
_INLINE = re.compile(r"`((?:make|flask|python3? -m|psql|curl) [^`\n]*)`")
# Commands the pages show that the project cannot check here: other tools' own.
ELSEWHERE = {
    "docker",
    "rabbitmqctl",
    "rabbitmqadmin",
    "systemctl",
    "journalctl",
    "pg_basebackup",
    "pg_ctl",
    "promtool",
    "open",  # a browser: its URL is checked like curl's
    "mkdir",
}


def _commands(text: str) -> list[list[str]]:
    """The commands of a shell block: lines joined where a backslash or an open quote
    carries on, comments dropped, leading VAR=value assignments dropped."""
    commands, pending = [], ""
    for line in text.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        if pending.rstrip().endswith("\\"):
            pending = pending.rstrip()[:-1]
            continue
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # a quote still open: the command goes on
            continue
        pending = ""
        while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
            words = words[1:]
        if words:
            commands.append(words)
    return commands


def _blocks() -> list[tuple[str, str, list[list[str]]]]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in _FENCE.finditer(text):
            found.append((page.name, match[2].strip(), _commands(match[3])))
        for match in _INLINE.finditer(text):
            if "…" in match[1]:  # an elided command (`flask db …`) names nothing to check
                continue
            found.append((page.name, "inline", [shlex.split(match[1])]))
    return found


BLOCKS = _blocks()
SHOWN = [(page, words) for page, _, commands in BLOCKS for words in commands]
RUNNABLE = [
    (page, words) for page, kind, commands in BLOCKS if kind == "runnable" for words in commands
]


@pytest.fixture(scope="module")
def url_maps():
    app = create_app({"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"})
    resources_of(app).pool.close()
    return {"8000": app.url_map, "8025": create_provider().url_map}


def _make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([\w-]+):", makefile, re.M))


def _check_url(url: str, method: str, url_maps) -> None:
    parts = urlsplit(url)
    adapter = url_maps[str(parts.port)].bind("127.0.0.1")
    adapter.match(parts.path, method=method)  # raises NotFound or MethodNotAllowed


def _check(words: list[str], url_maps) -> None:
    program, args = words[0], words[1:]
    if program == "make":
        targets = [a for a in args if not a.startswith("-") and "=" not in a]
        assert set(targets) <= _make_targets(), targets
    elif program == "flask":
        # `--app wsgi`, or none: the flask command finds wsgi.py in the project's folder.
        if args[:2] == ["--app", "wsgi"]:
            args = args[2:]
        groups = {"db": db_group, "users": users_group}
        assert args[:1] and args[0] in groups, f"the flask command groups are {groups}: {words}"
        subcommand = next((a for a in args[1:] if not a.startswith("-")), None)
        assert subcommand is None or subcommand in groups[args[0]].commands, subcommand
    elif program in ("python", "python3"):
        module = args[args.index("-m") + 1]
        assert importlib.util.find_spec(module) is not None, module
    elif program == "psql":
        script = args[args.index("-f") + 1 :][:1]  # `psql -1 -f` alone names no script
        assert all((ROOT / path).is_file() for path in script), script
    elif program in ("curl", "open"):
        method = args[args.index("-X") + 1] if "-X" in args else "GET"
        url = next(a for a in args if a.startswith("http://127.0.0.1:"))
        _check_url(url, method, url_maps)
    elif program.startswith(("deploy/", "sql/", ".ci/")):
        assert (ROOT / program).is_file() and os.access(ROOT / program, os.X_OK), program
    else:
        assert program in ELSEWHERE, f"a command this test does not know how to check: {words}"


def test_the_pages_show_commands_and_some_run():
    assert len(SHOWN) > 20
    assert len(RUNNABLE) >= 4


@pytest.mark.parametrize(("page", "words"), SHOWN, ids=[" ".join(w)[:60] for _, w in SHOWN])
def test_every_command_shown_names_something_that_exists(page, words, url_maps):
    _check(words, url_maps)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("page", "words"), RUNNABLE, ids=[" ".join(w)[:60] for _, w in RUNNABLE])
def test_every_runnable_command_runs(page, words, fresh_db_url):
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "DATABASE_URL": fresh_db_url, "PATH": f"{venv_bin}:{os.environ['PATH']}"}
    command = [os.path.expandvars(word.replace("$DATABASE_URL", fresh_db_url)) for word in words]

    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=100, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr


# Paths of the project the pages name (a file or folder that must exist), and the
# ones made at run time that git ignores.
_PATH = re.compile(
    r"(?<![\w/.-])((?:api|tasks|commands|users|delivery|operations|planning|schema|seed"
    r"|repositories|channels|adapters|db|domain|sql|provider|bench|deploy|tests|docs)"
    r"/[\w./*-]*[\w*])"
)
MADE_AT_RUN_TIME = ("deploy/secrets",)


def _named_paths() -> list[tuple[str, str]]:
    named = set()
    for page in PAGES:
        for match in _PATH.finditer(page.read_text()):
            path = match[1].split("#")[0]
            if not path.startswith(MADE_AT_RUN_TIME):
                named.add((page.name, path))
    return sorted(named)


@pytest.mark.parametrize(("page", "path"), _named_paths())
def test_every_path_the_pages_name_exists(page, path):
    pattern = path.replace("NNNN", "[0-9]" * 4)  # a migration's number, as the pages write it
    assert list(ROOT.glob(pattern)), f"{page} names {path}, which is not in the project"
