"""Developer sessions: `nox -s tests`, `nox -s lint`, `nox -s typecheck`, `nox -s slow`.

Sessions reuse the current Python environment (`--no-venv` style via `python=False`) when
NOX_REUSE_ENV=1, which is what CI does after installing the project once; otherwise each session
builds its own virtualenv with torch 2.13.0 (CPU) installed first.
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "tests"]
REUSE = os.environ.get("NOX_REUSE_ENV") == "1"
PYTHON = False if REUSE else None
TORCH = "torch==2.13.0"


def _install(session: nox.Session, extras: str = "dev") -> None:
    if REUSE:
        return
    session.install(TORCH)
    session.install("-e", f".[{extras}]")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The default test suite (slow tests excluded)."""
    _install(session, "dev,bench")
    session.run("python", "-m", "pytest", "-m", "not slow", *session.posargs)


@nox.session(python=PYTHON)
def slow(session: nox.Session) -> None:
    """Only the slow tests (real pretrained weights, larger data)."""
    _install(session, "dev,bench")
    session.run("python", "-m", "pytest", "-m", "slow", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    if not REUSE:
        session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy over the package."""
    _install(session)
    session.run("mypy", "ner_experiments")
