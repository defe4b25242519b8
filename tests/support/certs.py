"""Throwaway X.509 material for tests: a CA, a broker certificate, per-device client certificates.

Everything is EC P-256 (fast to generate: the whole bundle takes ~0.1 s) and written as PEM::

    bundle = make_cert_bundle(tmp_path / "certs", ["collector", "dev-1"])
    bundle.client("dev-1").cert_file   # CN=dev-1, signed by bundle.ca_file

The broker certificate carries SAN ``localhost`` and ``127.0.0.1`` so clients can verify it.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=2)


@dataclass(frozen=True)
class ClientCert:
    """A client certificate (CN = the MQTT username the broker will see) and its key."""

    name: str
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class CertBundle:
    """PEM files of one test PKI; ``clients`` maps CN to its certificate."""

    directory: Path
    ca_file: Path
    ca_key_file: Path
    server_cert_file: Path
    server_key_file: Path
    clients: dict[str, ClientCert] = field(default_factory=dict)

    def client(self, name: str) -> ClientCert:
        """The client certificate with CN ``name``, issued now if it does not exist yet."""
        if name not in self.clients:
            self.clients[name] = issue_client_cert(self, name)
        return self.clients[name]


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _builder(
    subject: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _load_ca(bundle: CertBundle) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(bundle.ca_file.read_bytes())
    key = serialization.load_pem_private_key(bundle.ca_key_file.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def issue_client_cert(bundle: CertBundle, name: str) -> ClientCert:
    """Sign a client certificate with CN ``name`` and write ``client-NAME.{crt,key}``."""
    ca_cert, ca_key = _load_ca(bundle)
    key = _key()
    cert = (
        _builder(name, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    client = ClientCert(
        name=name,
        cert_file=bundle.directory / f"client-{name}.crt",
        key_file=bundle.directory / f"client-{name}.key",
    )
    _write_cert(client.cert_file, cert)
    _write_key(client.key_file, key)
    return client


def make_cert_bundle(directory: Path, client_names: Iterable[str] = ()) -> CertBundle:
    """Make a CA, a broker certificate (localhost, 127.0.0.1) and a client certificate per name."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"anbu test CA {directory.name}")])
    ca_cert = (
        _builder(f"anbu test CA {directory.name}", ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = _key()
    server_cert = (
        _builder("localhost", ca_name, server_key.public_key())
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    bundle = CertBundle(
        directory=directory,
        ca_file=directory / "ca.crt",
        ca_key_file=directory / "ca.key",
        server_cert_file=directory / "server.crt",
        server_key_file=directory / "server.key",
    )
    _write_cert(bundle.ca_file, ca_cert)
    _write_key(bundle.ca_key_file, ca_key)
    _write_cert(bundle.server_cert_file, server_cert)
    _write_key(bundle.server_key_file, server_key)
    for name in client_names:
        bundle.client(name)
    return bundle
