"""The generated PKI: certificates chain to the CA, the admin is in system:masters, the SANs fit."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from gpulane_dev import pki


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_certificates_chain_to_the_ca(tmp_path: Path) -> None:
    made = pki.generate(tmp_path)
    ca = cert(made.ca_cert)
    for leaf in (cert(made.serving_cert), cert(made.admin_cert)):
        leaf.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_admin_identity_is_system_masters(tmp_path: Path) -> None:
    admin = cert(pki.generate(tmp_path).admin_cert)
    assert admin.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gpulane-admin"
    assert admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    usage = admin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_serving_cert_covers_loopback_and_the_service_names(tmp_path: Path) -> None:
    serving = cert(pki.generate(tmp_path).serving_cert)
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)


def test_token_file_and_private_keys(tmp_path: Path) -> None:
    made = pki.generate(tmp_path)
    assert made.token_file.read_text() == f'{made.admin_token},gpulane-admin,gpulane-admin,"system:masters"\n'
    assert len(made.admin_token) == 48
    for key in (made.ca_key, made.admin_key, made.serving_key, made.sa_private, made.token_file):
        assert key.stat().st_mode & 0o777 == 0o600, key
    assert isinstance(load_pem_public_key(made.sa_public.read_bytes()), ec.EllipticCurvePublicKey)


def test_each_control_plane_gets_fresh_keys(tmp_path: Path) -> None:
    first, second = pki.generate(tmp_path / "a"), pki.generate(tmp_path / "b")
    assert first.ca_cert.read_bytes() != second.ca_cert.read_bytes()
    assert first.admin_token != second.admin_token
    assert pki.load(tmp_path / "a", first.admin_token) == first
