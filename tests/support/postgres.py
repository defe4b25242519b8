"""A throwaway PostgreSQL server for tests: its own data directory, port and socket directory.

    server = start_postgres()            # initdb + pg_ctl start, ~1 s
    server.url                           # postgresql+psycopg://postgres@127.0.0.1:PORT/postgres
    url = server.create_database("t1")   # a fresh, empty database on the same server
    server.drop_database("t1")
    server.stop()                        # pg_ctl stop -m immediate, then the directory is removed

``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` user
(``runuser -u postgres --``) in a temp directory owned by that user. Durability is switched off
(``fsync=off``, no ``synchronous_commit``, no full-page writes): nothing here must survive a crash.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

HOST = "127.0.0.1"
SUPERUSER = "postgres"
_START_ATTEMPTS = 3


class PostgresUnavailable(RuntimeError):
    """This machine cannot run a throwaway PostgreSQL (no binaries, or no ``postgres`` user)."""


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: ``$ANBU_PG_BIN``, Debian's, or ``$PATH``."""
    candidates: list[Path] = []
    if os.environ.get("ANBU_PG_BIN"):
        candidates.append(Path(os.environ["ANBU_PG_BIN"]))
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _major(p), reverse=True
    )
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def _major(bin_dir: Path) -> int:
    name = bin_dir.parent.name
    return int(name) if name.isdigit() else 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PostgresServer:
    """A running server; ``stop()`` ends it and deletes its directory."""

    bin_dir: Path
    root: Path
    port: int
    _as_postgres: bool

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database."""
        return self.url_for(SUPERUSER)

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=HOST, port=self.port, user=SUPERUSER, dbname=SUPERUSER, autocommit=True
        )

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` and return its SQLAlchemy URL."""
        with self._connect() as conn:
            # FILE_COPY: with fsync off a plain copy of template0 beats WAL-logging every block.
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0 STRATEGY FILE_COPY").format(
                    sql.Identifier(name)
                )
            )
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending any session still connected to it."""
        with self._connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run(args, as_postgres=self._as_postgres, cwd=self.root)

    def start(self) -> None:
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.socket_dir}",
                f"-c listen_addresses={HOST}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
            ]
        )
        result = self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            "30",
            "-o",
            options,
            "start",
        )
        if result.returncode != 0:
            log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
            raise RuntimeError(f"pg_ctl start failed on port {self.port}:\n{result.stderr}\n{log}")

    def pause(self) -> None:
        """Stop the server (clients lose their connections) but keep its data to start again.

        ``fast``, not ``immediate``: this server runs with ``fsync=off``, so an immediate stop
        would lose committed work, which a real server would not.
        """
        self._run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"
        )

    def stop(self) -> None:
        """Stop the server at once and remove its directory."""
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._run(
                    str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate",
                    "-w", "stop",
                )  # fmt: skip
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _run(
    args: tuple[str, ...] | list[str], *, as_postgres: bool, cwd: Path
) -> subprocess.CompletedProcess[str]:
    command = ["runuser", "-u", SUPERUSER, "--", *args] if as_postgres else list(args)
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def start_postgres(bin_dir: Path | None = None) -> PostgresServer:
    """initdb into a new temp directory and start a server on a free port.

    Raises :class:`PostgresUnavailable` when this machine cannot run one.
    """
    bin_dir = bin_dir or find_bin_dir()
    if bin_dir is None:
        raise PostgresUnavailable(
            "PostgreSQL binaries (initdb, pg_ctl) not found in $ANBU_PG_BIN, "
            "/usr/lib/postgresql/*/bin or $PATH (apt-get install postgresql)"
        )
    as_postgres = os.geteuid() == 0
    root = Path(tempfile.mkdtemp(prefix="anbu-pg-"))
    try:
        if as_postgres:
            try:
                user = pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise PostgresUnavailable(
                    "running as root, and initdb refuses root, but there is no 'postgres' user"
                ) from None
            os.chown(root, user.pw_uid, user.pw_gid)
        _run(["mkdir", "-m", "700", str(root / "sock")], as_postgres=as_postgres, cwd=root)
        result = _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            as_postgres=as_postgres,
            cwd=root,
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        for attempt in range(_START_ATTEMPTS):
            server = PostgresServer(bin_dir, root, _free_port(), as_postgres)
            try:
                server.start()
                return server
            except RuntimeError:
                # Someone took the port between our probe and the server's bind: try another.
                if attempt == _START_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
