"""A throwaway PostgreSQL server for tests: Debian's ``postgresql`` package, ``initdb`` in a
temporary folder, listening on 127.0.0.1 only (and a unix socket in that folder) on a free
port, stopped and removed afterwards.

PostgreSQL refuses to run as root, so under root (CI) the server runs as the package's
``postgres`` user (``runuser``) in a folder it owns. Without the package the fixture skips,
naming the install; in CI (``CI=true``) it fails instead, since CI installs the package.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

USER = "workbench"
"""The database superuser made by initdb; local connections are trusted (no password)."""


def server_binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has initdb and pg_ctl."""
    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").is_file() and (p / "pg_ctl").is_file()]
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, default=None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def as_server_user() -> tuple[list[str], str | None]:
    """The command prefix that runs a server binary, and the owner its folder needs (root cannot)."""
    if os.geteuid() != 0:
        return [], None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root, and there is no postgres user to run PostgreSQL as (the postgresql package makes it)")
    return ["runuser", "-u", "postgres", "--"], "postgres"


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """``postgresql://workbench@127.0.0.1:PORT/postgres`` of a server that lives for the test module."""
    binaries = server_binaries()
    if binaries is None:
        reason = "PostgreSQL is not installed (Debian: apt-get install postgresql)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI installs it in .ci/run")
        pytest.skip(reason)
    prefix, owner = as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="workbench-pg-"))
    if owner is not None:
        shutil.chown(folder, owner, owner)
    data, port = folder / "data", free_port()

    def run(*args: object) -> None:  # in the folder: the postgres user may not enter the current one
        subprocess.run([*prefix, *map(str, args)], check=True, capture_output=True, text=True, timeout=120, cwd=folder)

    try:
        run(binaries / "initdb", "-D", data, "-U", USER, "--auth=trust", "--no-sync", "-E", "UTF8")
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=50"
        run(binaries / "pg_ctl", "-D", data, "-o", options, "-l", folder / "server.log", "-w", "-t", "60", "start")
    except subprocess.CalledProcessError as error:
        log = (folder / "server.log").read_text(errors="replace")[-2000:] if (folder / "server.log").is_file() else ""
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {error.stderr[-2000:]}{log}")
    try:
        yield f"postgresql://{USER}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=120, cwd=folder)
        shutil.rmtree(folder, ignore_errors=True)
