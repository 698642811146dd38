"""TLS and mutual TLS, with certificates made on the fly."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
import pytest
from armonik.client import ArmoniKVersions
from armonik.common.channel import create_channel

from aksnap.fixtures.server import SimulatedControlPlane, TlsConfig

sys.path.insert(0, str(Path(__file__).parent))
from test_server_support import make_pki, tiny_cluster  # noqa: E402


@pytest.fixture(scope="module")
def pki():
    return make_pki()


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
