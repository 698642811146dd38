"""Throughput of the simulated control plane's ListTasksDetailed (prints figures; not a test).

    python bench/bench_server.py [--tasks 1000000] [--page-sizes 1000,2000,5000] [--synthetic]

Builds a big cluster (the engine's htcmock scenario when it is installed, else the server's
vectorised synthetic cluster), serves it, then pages through every task the way the exporter
does: 16 shards (``id STARTS_WITH <hex digit>`` AND ``session_id == S``), sorted by id, pages of
N, through a raw gRPC channel. Two client paths are timed: identity deserializer (raw bytes,
what a ptars-decoding exporter sees) and ``ListTasksDetailedResponse.FromString``. The first
page of each shard also pays for the filter + sort (then cached), so the figures are end to end.
"""

from __future__ import annotations

import argparse
import sys
import time

import grpc
import pyarrow.compute as pc
from armonik.protogen.common import tasks_common_pb2, tasks_fields_pb2, tasks_filters_pb2

from aksnap.fixtures.server import SimulatedControlPlane, synthetic_cluster

METHOD = "/armonik.api.grpc.v1.tasks.Tasks/ListTasksDetailed"


def build(n: int, synthetic: bool):
    if not synthetic:
        try:
            from aksnap.fixtures.scenarios import build_scenario

            t = time.perf_counter()
            scenario = build_scenario("htcmock", seed=0, tasks=n)
            print(f"engine htcmock scenario, {n} tasks requested: built in {time.perf_counter() - t:.1f} s")
            return scenario
        except Exception as e:  # engine not there yet, or it refused the size
            print(f"(engine htcmock unavailable: {type(e).__name__}: {e}; using the synthetic cluster)")
    t = time.perf_counter()
    cluster = synthetic_cluster(n, n_sessions=1)
    print(f"synthetic cluster, {n} tasks: built in {time.perf_counter() - t:.1f} s")
    return cluster


def shard_request(session: str, digit: str, page: int, size: int) -> bytes:
    def field(enum):
        return tasks_fields_pb2.TaskField(task_summary_field={"field": enum})

    conj = tasks_filters_pb2.FiltersAnd(**{"and": [
        tasks_filters_pb2.FilterField(field=field(1), filter_string={"value": session, "operator": 0}),
        tasks_filters_pb2.FilterField(field=field(16), filter_string={"value": digit, "operator": 4}),
    ]})
    return tasks_common_pb2.ListTasksRequest(
        page=page, page_size=size, filters=tasks_filters_pb2.Filters(**{"or": [conj]}),
        sort=tasks_common_pb2.ListTasksRequest.Sort(field=field(16), direction=1),
    ).SerializeToString()


def scan(channel, session: str, size: int, parse: bool) -> tuple[int, int, float]:
    call = channel.unary_unary(METHOD, request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)
    seen = nbytes = 0
    t = time.perf_counter()
    for digit in "0123456789abcdef":
        page = 0
        while True:
            raw = call(shard_request(session, digit, page, size))
            nbytes += len(raw)
            if parse:
                n = len(tasks_common_pb2.ListTasksDetailedResponse.FromString(raw).tasks)
            else:
                n = _count_items(raw)
            seen += n
            if n < size:
                break
            page += 1
    return seen, nbytes, time.perf_counter() - t


def _count_items(raw: bytes) -> int:
    # walk the top-level fields: tag 0x0A = one task
    i = n = 0
    end = len(raw)
    while i < end:
        tag = raw[i]
        i += 1
        if tag & 7 == 2:
            length = shift = 0
            while True:
                b = raw[i]
                i += 1
                length |= (b & 0x7F) << shift
                shift += 7
                if b < 0x80:
                    break
            i += length
            n += tag == 0x0A
        else:  # varint scalar
            while raw[i] & 0x80:
                i += 1
            i += 1
    return n


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1_000_000)
    ap.add_argument("--page-sizes", default="1000,2000,5000")
    ap.add_argument("--synthetic", action="store_true", help="skip the engine, use the synthetic cluster")
    args = ap.parse_args(argv)
    cluster = build(args.tasks, args.synthetic)
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    with SimulatedControlPlane(cluster) as cp:
        endpoint = cp.start()
        view = cp.view()
        counts = pc.value_counts(view.tasks.column("session_id")).to_pylist()
        session = max(counts, key=lambda c: c["counts"])["values"]
        print(f"serving {view.tasks.num_rows} tasks on {endpoint}; scanning session {session} "
              f"({max(c['counts'] for c in counts)} tasks)")
        with grpc.insecure_channel(endpoint, options=options) as channel:
            for size in [int(s) for s in args.page_sizes.split(",")]:
                cp.clear_caches()
                # 1st scan: filter + sort per shard, every page serialized alone (what one
                # export of a fresh snapshot costs); 2nd: the cached path (whole table serialized
                # once the 1st scan has read it all); 3rd: cached, parsed with FromString.
                for label, parse in (("cold, raw bytes", False), ("warm, raw bytes", False),
                                     ("warm, FromString", True)):
                    seen, nbytes, secs = scan(channel, session, size, parse)
                    print(f"page {size:>5}  {label:<17}: {seen:>9} tasks in {secs:6.2f} s = "
                          f"{seen / secs:>10,.0f} tasks/s  ({nbytes / max(seen, 1):.0f} B/task)")
                    sys.stdout.flush()


if __name__ == "__main__":
    main()
