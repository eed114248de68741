"""A real OpenLDAP ``slapd`` (Debian's package) for the tests: its own configuration,
database and certificates in a temporary directory, on free ports, LDAP and LDAPS."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SUFFIX = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "directory-admin-secret"
SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SCHEMAS = ("core", "cosine", "nis", "inetorgperson")


def available() -> bool:
    return Path(SLAPD).exists() and shutil.which("ldapadd") is not None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Person:
    uid: str
    password: str
    groups: tuple[str, ...] = ()


class Slapd:
    """``slapd`` in the foreground, stopped with SIGTERM; started again on the same ports."""

    def __init__(self, directory: Path, cert: Path, key: Path, ca: Path) -> None:
        self.directory = directory
        self.port, self.tls_port = _free_port(), _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        (directory / "data").mkdir(parents=True, exist_ok=True)
        includes = "\n".join(f"include /etc/ldap/schema/{name}.schema" for name in SCHEMAS)
        (directory / "slapd.conf").write_text(f"""{includes}
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {directory}/slapd.pid
TLSCACertificateFile {ca}
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}
access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to *
    by * read
database mdb
maxsize 67108864
suffix "{SUFFIX}"
rootdn "{ADMIN_DN}"
rootpw {ADMIN_PASSWORD}
directory {directory}/data
""")

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"ldaps://localhost:{self.tls_port}"

    def start(self, timeout: float = 30.0) -> "Slapd":
        self.process = subprocess.Popen(
            [SLAPD, "-f", str(self.directory / "slapd.conf"), "-h",
             f"ldap://127.0.0.1:{self.port}/ ldaps://127.0.0.1:{self.tls_port}/", "-d", "0"],
            stdout=subprocess.DEVNULL, stderr=open(self.directory / "slapd.log", "ab"),
        )
        deadline = time.monotonic() + timeout
        while True:  # a port that accepts: the only sign slapd gives in the foreground
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited: {(self.directory / 'slapd.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("slapd did not listen") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def add(self, ldif: str) -> None:
        subprocess.run(["ldapadd", "-x", "-H", self.url, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD],
                       input=ldif, text=True, check=True, capture_output=True)

    def populate(self, people: list[Person]) -> None:
        entries = [f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example",
                   f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people",
                   f"dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups"]
        for person in people:
            entries.append(f"dn: uid={person.uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {person.uid}\n"
                           f"cn: {person.uid}\nsn: {person.uid}\nuserPassword: {person.password}")
        groups = sorted({g for person in people for g in person.groups})
        for group in groups:
            members = [p for p in people if group in p.groups]
            lines = "\n".join(f"member: uid={p.uid},ou=people,{SUFFIX}" for p in members)
            entries.append(f"dn: cn={group},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {group}\n{lines}")
        self.add("\n\n".join(entries) + "\n")
