"""Test helpers for the exporter: an independent wire -> bundle normaliser, and certificates.

The normaliser is deliberately written row by row in plain Python, not with the exporter's
Arrow code, so that a round-trip test compares two independent readings of the same rows.
Used by ``tests/test_export*.py`` and ``bench/bench_export.py``; not imported at run time.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_OPTION_KEYS = ("max_duration", "max_retries", "priority", "partition_id", "application_name",
                "application_version", "application_namespace", "application_service",
                "engine_type", "options")


def _us(table: pa.Table) -> pa.Table:
    """Durations and timestamps at microseconds, as the bundle stores them."""

    def fix(t: pa.DataType) -> pa.DataType:
        if pa.types.is_duration(t):
            return pa.duration("us")
        if pa.types.is_timestamp(t):
            return pa.timestamp("us", tz="UTC")
        if pa.types.is_struct(t):
            return pa.struct([pa.field(f.name, fix(f.type)) for f in t])
        return t

    schema = pa.schema([pa.field(f.name, fix(f.type)) for f in table.schema])
    return table.cast(schema, safe=False)


def _ts(v):
    return None if v is None or v == EPOCH else v


def _map(v):
    if v is None:
        return None
    return sorted(v.items()) if isinstance(v, dict) else sorted(v)


def _strip(v: str | None, prefix: str) -> str | None:
    return v[len(prefix):] if v and v.startswith(prefix) else v


def _opts(o: dict | None) -> dict[str, Any]:
    if o is None:
        return {k: None for k in _OPTION_KEYS}
    d = {k: o.get(k) for k in _OPTION_KEYS}
    d["options"] = _map(d["options"])
    return d


def wire_tasks(table: pa.Table) -> dict[str, dict]:
    out = {}
    for r in _us(table).to_pylist():
        o = r.get("output")
        row = {
            "task_id": r["id"], "session_id": r["session_id"],
            "status": _strip(r["status"], "TASK_STATUS_"), "status_message": r["status_message"],
            "owner_pod_id": r["owner_pod_id"], "pod_hostname": r["pod_hostname"],
            "initial_task_id": r["initial_task_id"], "created_by": r["created_by"],
            "payload_id": r["payload_id"],
            "parent_task_ids": list(r["parent_task_ids"] or []),
            "data_dependencies": list(r["data_dependencies"] or []),
            "expected_output_ids": list(r["expected_output_ids"] or []),
            "retry_of_ids": list(r["retry_of_ids"] or []),
            "output_success": None if o is None else o["success"],
            "output_error": None if o is None else o["error"],
            **_opts(r.get("options")),
        }
        for k in ("created_at", "submitted_at", "received_at", "acquired_at", "fetched_at",
                  "started_at", "processed_at", "ended_at", "pod_ttl"):
            row[k] = _ts(r[k])
        for k in ("creation_to_end_duration", "processing_to_end_duration",
                  "received_to_end_duration"):
            row[k] = r[k]
        out[row["task_id"]] = row
    return out


def wire_results(table: pa.Table) -> dict[str, dict]:
    out = {}
    for r in _us(table).to_pylist():
        row = {
            "result_id": r["result_id"], "session_id": r["session_id"], "name": r["name"],
            "status": _strip(r["status"], "RESULT_STATUS_"), "owner_task_id": r["owner_task_id"],
            "created_by": r["created_by"], "created_at": _ts(r["created_at"]),
            "completed_at": _ts(r["completed_at"]), "size": r["size"],
            "opaque_id": r["opaque_id"], "manual_deletion": r["manual_deletion"],
        }
        out[row["result_id"]] = row
    return out


def wire_sessions(table: pa.Table) -> dict[str, dict]:
    out = {}
    for r in _us(table).to_pylist():
        o = r.get("options")
        row = {
            "session_id": r["session_id"], "status": _strip(r["status"], "SESSION_STATUS_"),
            "client_submission": r["client_submission"],
            "worker_submission": r["worker_submission"],
            "partition_ids": list(r["partition_ids"] or []),
            "options": None if o is None else _opts(o),
            "duration": r["duration"],
        }
        for k in ("created_at", "cancelled_at", "closed_at", "purged_at", "deleted_at"):
            row[k] = _ts(r[k])
        out[row["session_id"]] = row
    return out


def wire_partitions(table: pa.Table) -> dict[str, dict]:
    out = {}
    for r in table.to_pylist():
        row = {
            "partition_id": r["id"], "parent_partition_ids": list(r["parent_partition_ids"] or []),
            "pod_reserved": r["pod_reserved"], "pod_max": r["pod_max"], "priority": r["priority"],
            "preemption_percentage": r["preemption_percentage"],
            "pod_configuration": _map(r["pod_configuration"]),
        }
        out[row["partition_id"]] = row
    return out


WIRE = {"tasks": wire_tasks, "results": wire_results, "sessions": wire_sessions,
        "partitions": wire_partitions}
ID = {"tasks": "task_id", "results": "result_id", "sessions": "session_id",
      "partitions": "partition_id"}


def bundle_rows(table: pa.Table, name: str) -> dict[str, dict]:
    """Bundle rows keyed by id, maps as sorted pairs (to compare with :data:`WIRE`)."""
    out = {}
    for r in table.to_pylist():
        for k in ("options", "pod_configuration"):
            if k in r and isinstance(r[k], list):
                r[k] = _map(r[k])
        if name == "sessions" and r.get("options") is not None:
            r["options"]["options"] = _map(r["options"]["options"])
        out[r[ID[name]]] = r
    return out


@dataclass
class Pki:
    ca_pem: bytes
    server_cert_pem: bytes
    server_key_pem: bytes
    client_cert_pem: bytes
    client_key_pem: bytes
    other_ca_pem: bytes  # a CA that signed nothing here: the server must not be trusted with it


def make_pki(host: str = "127.0.0.1") -> Pki:
    """A throwaway CA, a server certificate for ``host`` and a client certificate."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = _dt.datetime.now(_dt.timezone.utc)

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def pem_key(k):
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    def ca(name):
        k = key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(k.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - _dt.timedelta(minutes=5))
                .not_valid_after(now + _dt.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(k, hashes.SHA256()))
        return k, cert

    def leaf(ca_key, ca_cert, name, server: bool):
        k = key()
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
             .issuer_name(ca_cert.subject).public_key(k.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - _dt.timedelta(minutes=5))
             .not_valid_after(now + _dt.timedelta(days=1)))
        if server:
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]),
                critical=False)
        cert = b.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), pem_key(k)

    ca_key, ca_cert = ca("aksnap test CA")
    _, other = ca("unrelated CA")
    s_cert, s_key = leaf(ca_key, ca_cert, host, True)
    c_cert, c_key = leaf(ca_key, ca_cert, "aksnap-client", False)
    return Pki(ca_cert.public_bytes(serialization.Encoding.PEM), s_cert, s_key, c_cert, c_key,
               other.public_bytes(serialization.Encoding.PEM))
