"""Helpers for the simulated control plane's tests (no tests in here): a tiny hand-drawn
cluster, a cluster that changes once (TwoStateCluster) and a throw-away PKI (make_pki).

Times are seconds after T0 (2025-01-01T00:00:00Z)::

    session S1 (RUNNING, partitions [default, gpu])
      0a-task  COMPLETED  prio 1 tier=gold    created 0  started 2  ended 10   payload p0 -> output r0
      1b-task  ERROR      prio 2 tier=silver  created 1  started 5  ended 20   "boom"      -> output r1 (ABORTED)
      2c-task  PENDING    prio 3 (no tier)    created 3  (never started)       depends on r0 -> output r2
      3d-task  PROCESSING prio 1 partition gpu created 4 started 6             -> output r3
    session S2 (CANCELLED at 30, partitions [default])
      4e-task  CANCELLED  prio 1 tier=gold    created 7  ended 30             -> output r4 (ABORTED)
"""

from __future__ import annotations

import datetime as dt
import ipaddress

from armonik.protogen.common import (
    objects_pb2,
    partitions_common_pb2,
    results_common_pb2,
    sessions_common_pb2,
    tasks_common_pb2,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from aksnap.fixtures.server import StaticCluster

T0 = int(dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc).timestamp())
S1, S2 = "s1-session", "s2-session"


def ts(offset: float) -> dict:
    micros = int(round((T0 + offset) * 1e6))
    return {"seconds": micros // 1_000_000, "nanos": micros % 1_000_000 * 1000}


def dur(seconds: float) -> dict:
    return {"seconds": int(seconds), "nanos": int(round((seconds % 1) * 1e9))}


def _options(priority: int, partition: str = "default", **extra) -> objects_pb2.TaskOptions:
    return objects_pb2.TaskOptions(priority=priority, partition_id=partition, max_retries=2,
                                   max_duration=dur(60), application_name="app", options=extra)


def tiny_tasks() -> list:
    T = tasks_common_pb2.TaskDetailed
    return [
        T(id="0a-task", session_id=S1, initial_task_id="0a-task", parent_task_ids=[S1],
          payload_id="p0", expected_output_ids=["r0"], status="TASK_STATUS_COMPLETED",
          options=_options(1, tier="gold"), created_at=ts(0), submitted_at=ts(1), started_at=ts(2),
          ended_at=ts(10), creation_to_end_duration=dur(10), processing_to_end_duration=dur(8),
          output={"success": True}, pod_hostname="pod-a", owner_pod_id="10.0.0.1"),
        T(id="1b-task", session_id=S1, initial_task_id="1b-task", parent_task_ids=[S1],
          payload_id="p1", expected_output_ids=["r1"], status="TASK_STATUS_ERROR",
          status_message="boom", options=_options(2, tier="silver"), created_at=ts(1),
          submitted_at=ts(2), started_at=ts(5), ended_at=ts(20), creation_to_end_duration=dur(19),
          processing_to_end_duration=dur(15), output={"success": False, "error": "boom"},
          pod_hostname="pod-b", owner_pod_id="10.0.0.2"),
        T(id="2c-task", session_id=S1, initial_task_id="2c-task", parent_task_ids=[S1],
          payload_id="p2", expected_output_ids=["r2"], data_dependencies=["r0"],
          status="TASK_STATUS_PENDING", options=_options(3), created_at=ts(3)),
        T(id="3d-task", session_id=S1, initial_task_id="3d-task", parent_task_ids=[S1],
          payload_id="p3", expected_output_ids=["r3"], status="TASK_STATUS_PROCESSING",
          options=_options(1, partition="gpu"), created_at=ts(4), submitted_at=ts(4.5),
          started_at=ts(6), pod_hostname="pod-gpu"),
        T(id="4e-task", session_id=S2, initial_task_id="4e-task", parent_task_ids=[S2],
          payload_id="p4", expected_output_ids=["r4"], status="TASK_STATUS_CANCELLED",
          options=_options(1, tier="gold"), created_at=ts(7), ended_at=ts(30),
          creation_to_end_duration=dur(23)),
    ]


def tiny_results() -> list:
    R = results_common_pb2.ResultRaw
    out = []
    for i, (session, owner, status, completed) in enumerate([
        (S1, "0a-task", "RESULT_STATUS_COMPLETED", 10),
        (S1, "1b-task", "RESULT_STATUS_ABORTED", None),
        (S1, "2c-task", "RESULT_STATUS_CREATED", None),
        (S1, "3d-task", "RESULT_STATUS_CREATED", None),
        (S2, "4e-task", "RESULT_STATUS_ABORTED", None),
    ]):
        out.append(R(result_id=f"p{i}", name=f"payload{i}", session_id=session,
                     status="RESULT_STATUS_COMPLETED", created_at=ts(i), completed_at=ts(i), size=8))
        r = R(result_id=f"r{i}", name=f"output{i}", session_id=session, owner_task_id=owner,
              status=status, created_at=ts(i), size=100 * i)
        if completed is not None:
            r.completed_at.CopyFrom(R(completed_at=ts(completed)).completed_at)
        out.append(r)
    return out


def tiny_sessions() -> list:
    S = sessions_common_pb2.SessionRaw
    return [
        S(session_id=S1, status="SESSION_STATUS_RUNNING", partition_ids=["default", "gpu"],
          client_submission=True, worker_submission=True, created_at=ts(-1),
          options=_options(1)),
        S(session_id=S2, status="SESSION_STATUS_CANCELLED", partition_ids=["default"],
          created_at=ts(-1), cancelled_at=ts(30), duration=dur(31), options=_options(1)),
    ]


def tiny_partitions() -> list:
    P = partitions_common_pb2.PartitionRaw
    return [
        P(id="default", pod_reserved=1, pod_max=10, priority=1, preemption_percentage=50),
        P(id="gpu", parent_partition_ids=["default"], pod_reserved=0, pod_max=2, priority=5,
          pod_configuration={"gpu": "1"}),
    ]


def tiny_cluster() -> StaticCluster:
    return StaticCluster.from_messages(tiny_tasks(), tiny_results(), tiny_sessions(),
                                       tiny_partitions(), start_time=float(T0), end_time=30.0)


class TwoStateCluster:
    """A ClusterLike that changes once, at simulated time ``change_at``::

        before: x-task PROCESSING owns rx (CREATED)
        after:  x-task COMPLETED, y-task (its subtask) appears PENDING and now owns rx,
                rx still CREATED; x's payload px stays COMPLETED; ry appears (CREATED, owner y)
    """

    def __init__(self, change_at: float = 0.3):
        T = tasks_common_pb2.TaskDetailed
        R = results_common_pb2.ResultRaw
        x = dict(id="x-task", session_id=S1, initial_task_id="x-task", parent_task_ids=[S1],
                 payload_id="px", expected_output_ids=["rx"], created_at=ts(0), options=_options(1))
        y = T(id="y-task", session_id=S1, initial_task_id="y-task", parent_task_ids=[S1, "x-task"],
              payload_id="py", expected_output_ids=["rx"], status="TASK_STATUS_PENDING",
              created_at=ts(1), created_by="x-task", options=_options(1))
        px = R(result_id="px", name="px", session_id=S1, status="RESULT_STATUS_COMPLETED", created_at=ts(0))
        rx_before = R(result_id="rx", name="rx", session_id=S1, owner_task_id="x-task",
                      status="RESULT_STATUS_CREATED", created_at=ts(0))
        rx_after = R(result_id="rx", name="rx", session_id=S1, owner_task_id="y-task",
                     status="RESULT_STATUS_CREATED", created_at=ts(0))
        ry = R(result_id="py", name="py", session_id=S1, status="RESULT_STATUS_COMPLETED", created_at=ts(1))
        sessions = tiny_sessions()[:1]
        self.before = StaticCluster.from_messages(
            [T(status="TASK_STATUS_PROCESSING", **x)], [px, rx_before], sessions)
        self.after = StaticCluster.from_messages(
            [T(status="TASK_STATUS_COMPLETED", ended_at=ts(0.3), **x), y], [px, rx_after, ry], sessions)
        self.start_time = float(T0)
        self.end_time = change_at + 1.0
        self.change_at = change_at

    def view(self, t: float):
        v = (self.after if t >= self.change_at else self.before).view(t)
        v.version = 2 if t >= self.change_at else 1
        return v

    def inject_tasks(self, session_id: str, n: int, t: float) -> None:
        raise NotImplementedError


# --- certificates for the TLS tests -------------------------------------------------------------

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


def make_pki() -> dict:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate (PEM bytes)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("aksnap test CA", ca_key, "aksnap test CA", ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue("localhost", server_key, "aksnap test CA", ca_key, server=True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _issue("aksnap client", client_key, "aksnap test CA", ca_key)
    return {"ca": ca, "server": server, "server_key": _pem_key(server_key),
            "client": client, "client_key": _pem_key(client_key)}


