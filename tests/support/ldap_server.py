"""Debian's slapd, started for a test: its own folder, a free port, the entries loaded at start.

`make test` installs slapd (apt), as it does Chromium.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.stack import free_port

SUFFIX = "dc=example,dc=com"
CONFIG = """include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {folder}/slapd.pid
database mdb
maxsize 10485760
suffix "{suffix}"
rootdn "cn=admin,{suffix}"
rootpw admin-secret
directory {folder}/db
"""


def person(uid: str, password: str, mail: str) -> str:
    return (
        f"dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n"
        f"mail: {mail}\nuserPassword: {password}\n"
    )


def group(name: str, *members: str) -> str:
    lines = "".join(f"member: uid={uid},ou=people,{SUFFIX}\n" for uid in members)
    return f"dn: cn={name},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {name}\n{lines}"


BASE = (
    f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n"
    f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n"
    f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n"
)


def _answers(uri: str) -> bool:
    import ldap

    try:
        ldap.initialize(uri).simple_bind_s()  # anonymous
    except ldap.SERVER_DOWN:
        return False
    return True


@contextmanager
def slapd(folder: Path, entries: list[str]) -> Iterator[str]:
    """Serve these entries (LDIF, under ou=people and ou=groups) until the block ends; yields the URI."""
    binary = shutil.which("slapd") or "/usr/sbin/slapd"
    if not Path(binary).exists():
        pytest.fail("Debian's slapd is not installed: `make test` installs it (apt-get install slapd).")
    (folder / "db").mkdir(parents=True)
    (folder / "slapd.conf").write_text(CONFIG.format(folder=folder, suffix=SUFFIX))
    (folder / "data.ldif").write_text("\n".join([BASE, *entries]))
    conf = str(folder / "slapd.conf")
    subprocess.run(
        ["/usr/sbin/slapadd", "-f", conf, "-l", str(folder / "data.ldif")], check=True, capture_output=True
    )
    uri = f"ldap://127.0.0.1:{free_port()}/"
    log = open(folder / "slapd.log", "wb")  # noqa: SIM115 - closed below, after the process
    # -d 0: in the foreground, so that terminate() ends it.
    process = subprocess.Popen(
        [binary, "-f", conf, "-h", uri, "-d", "0"], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 20
        while not _answers(uri):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"slapd did not start: {(folder / 'slapd.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield uri
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
