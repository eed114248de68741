"""A development certificate authority: ``flightsql tls DIR --name NAME --host HOST...``.

For trying TLS and for tests, not for production (where the organisation's CA issues
the certificates).  DIR holds ``ca.pem`` and ``ca-key.pem`` (made on first use, the key
mode 0600) and, per name, ``NAME.pem`` and ``NAME-key.pem``: a certificate for every
host name and address given, usable by a server and as a client certificate (a node
presents it to its peers, and its executors to the internal servers).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "ca"
#: a development certificate's life
VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class Issued:
    """Paths of a certificate, its key and the CA that issued it."""

    cert: Path
    key: Path
    ca: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _subject(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "flightsql development"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _authority(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA in ``directory``, made on first use."""
    cert_path, key_path = directory / f"{CA_NAME}.pem", directory / f"{CA_NAME}-key.pem"
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path} is not an EC key made by this command")
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = _subject("flightsql development CA")
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + 10 * VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _alternative_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def issue(directory: Path, name: str, hosts: Sequence[str]) -> Issued:
    """A certificate for ``hosts`` (names and addresses), signed by the CA in ``directory``."""
    if not name or "/" in name or name.startswith(".") or name == CA_NAME:
        raise ValueError(f"not a usable certificate name: {name!r}")
    if not hosts:
        raise ValueError("a certificate needs at least one host name or address")
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _authority(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(_subject(hosts[0])).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName([_alternative_name(h) for h in dict.fromkeys(hosts)]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Issued(cert_path, key_path, directory / f"{CA_NAME}.pem")


def default_hosts() -> list[str]:
    """This machine's names and loopback: enough for a node and clients on one machine."""
    import socket

    return ["localhost", "127.0.0.1", socket.gethostname(), socket.getfqdn()]
