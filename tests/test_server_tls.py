"""TLS and mutual TLS, with certificates made on the fly."""

from __future__ import annotations

import datetime as dt
import ipaddress
import sys
from pathlib import Path

import grpc
import pytest
from armonik.client import ArmoniKVersions
from armonik.common.channel import create_channel
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from aksnap.fixtures.server import SimulatedControlPlane, TlsConfig

sys.path.insert(0, str(Path(__file__).parent))
from test_server_support import tiny_cluster  # noqa: E402


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _issue(subject, key, issuer, issuer_key, *, ca=False, server=False):
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pki():
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("aksnap test CA", ca_key, "aksnap test CA", ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue("localhost", server_key, "aksnap test CA", ca_key, server=True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _issue("aksnap client", client_key, "aksnap test CA", ca_key)
    return {"ca": ca, "server": server, "server_key": _pem_key(server_key),
            "client": client, "client_key": _pem_key(client_key)}


def _versions(channel):
    return ArmoniKVersions(channel).list_versions()


def test_tls_server_is_reachable_with_its_ca_and_refuses_plaintext(pki):
    tls = TlsConfig(cert_pem=pki["server"], key_pem=pki["server_key"])
    with SimulatedControlPlane(tiny_cluster(), tls=tls) as cp:
        endpoint = cp.start()
        creds = grpc.ssl_channel_credentials(root_certificates=pki["ca"])
        with grpc.secure_channel(endpoint, creds) as ch:
            assert _versions(ch)["api"]
        with create_channel(f"https://{endpoint}", certificate_authority=pki["ca"]) as ch:
            assert _versions(ch)["api"]  # armonik's own channel helper, as armonik-cli uses it
        with grpc.insecure_channel(endpoint) as ch:
            with pytest.raises(grpc.RpcError) as err:
                ArmoniKVersions(ch).list_versions()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_requires_a_client_certificate_signed_by_the_client_ca(pki):
    tls = TlsConfig(cert_pem=pki["server"], key_pem=pki["server_key"], client_ca_pem=pki["ca"])
    with SimulatedControlPlane(tiny_cluster(), tls=tls) as cp:
        endpoint = cp.start()
        with grpc.secure_channel(endpoint, grpc.ssl_channel_credentials(root_certificates=pki["ca"])) as ch:
            with pytest.raises(grpc.RpcError) as err:
                _versions(ch)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        creds = grpc.ssl_channel_credentials(root_certificates=pki["ca"], private_key=pki["client_key"],
                                             certificate_chain=pki["client"])
        with grpc.secure_channel(endpoint, creds) as ch:
            assert _versions(ch)["api"]
        with create_channel(f"https://{endpoint}", certificate_authority=pki["ca"],
                            client_certificate=pki["client"], client_key=pki["client_key"]) as ch:
            assert _versions(ch)["api"]
