"""PostgreSQL's server programs (initdb, pg_ctl): found on the machine, or installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from services.infra.config import InfraConfig
from services.infra.errors import InfraError
from services.infra.procs import tail

_DEBIAN_ROOT = Path("/usr/lib/postgresql")
_CREATECLUSTER_CONF = Path("/etc/postgresql-common/createcluster.conf")


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.parent.name))


def find_bin_dir(prefer_version: str | None = None) -> Path | None:
    """The folder of `initdb` and `pg_ctl`: $LEDGER_PG_BIN, Debian's newest, or $PATH."""
    explicit = os.environ.get("LEDGER_PG_BIN")
    if explicit:
        return Path(explicit)
    candidates = sorted(_DEBIAN_ROOT.glob("*/bin/initdb"), key=_version_key, reverse=True)
    for initdb in candidates:
        if prefer_version is not None and initdb.parent.parent.name == prefer_version:
            return initdb.parent
    if candidates:
        return candidates[0].parent
    initdb_path = shutil.which("initdb")
    if initdb_path is not None and shutil.which("pg_ctl") is not None:
        return Path(initdb_path).parent
    return None


def _apt(config: InfraConfig, *arguments: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log_file = config.logs_dir / "apt.log"
    with log_file.open("ab") as output:
        result = subprocess.run(
            ["apt-get", *arguments],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            timeout=1200,
            check=False,
        )
    if result.returncode != 0:
        raise InfraError(
            f"`apt-get {' '.join(arguments)}` failed (exit {result.returncode}); "
            f"read {log_file}:\n{tail(log_file)}"
        )


def _no_main_cluster() -> None:
    """Keep apt from creating and starting Debian's own cluster on port 5432."""
    try:
        text = _CREATECLUSTER_CONF.read_text()
    except OSError:
        return
    if re.search(r"^\s*create_main_cluster\s*=", text, re.MULTILINE):
        return
    _CREATECLUSTER_CONF.write_text(
        text
        + "\n# added by `ledger infra up`: it runs its own server\ncreate_main_cluster = false\n"
    )


def ensure_bin_dir(config: InfraConfig, log: Callable[[str], None]) -> Path:
    """The server programs' folder; installs Debian's `postgresql` when missing (as root)."""
    found = find_bin_dir()
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise InfraError(
            "PostgreSQL's server programs (initdb, pg_ctl) were not found: install PostgreSQL "
            "(Debian: sudo apt-get install -y postgresql) or set LEDGER_PG_BIN to their folder"
        )
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    log("postgres: installing PostgreSQL with apt-get (first start only)")
    _apt(config, "update")
    _apt(config, "install", "-y", "--no-install-recommends", "postgresql-common")
    _no_main_cluster()
    _apt(config, "install", "-y", "--no-install-recommends", "postgresql")
    found = find_bin_dir()
    if found is None:
        raise InfraError(f"apt-get installed postgresql but no initdb was found in {_DEBIAN_ROOT}")
    return found
