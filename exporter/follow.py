"""Following a session live: ArmoniK's ``Events.GetEvents`` stream, resubscribed when it drops.

:class:`EventFollower` is a thread that subscribes to one session's events and hands them on
in batches of plain tuples (no protobuf object outlives the loop that read it):

- ``("task", task_id, status)`` for NEW_TASK and TASK_STATUS_UPDATE (status as the bundle
  spells it: ``COMPLETED``);
- ``("result", result_id, status)`` for NEW_RESULT and RESULT_STATUS_UPDATE;
- ``("owner", result_id, owner_task_id)`` for RESULT_OWNER_UPDATE.

The stream has no order, may lose or repeat events, and ends when the control plane restarts
(``docs/simulator-server.md`` compares it with Core's): the follower resubscribes with backoff
(a new subscription replays the session) and counts what happened; the watcher reconciles
with list calls anyway. gRPC only: the state and the analysis live elsewhere (``aksnap watch``
ties them together).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import grpc
from armonik.protogen.common import events_common_pb2, result_status_pb2, task_status_pb2

from aksnap.exporter.budget import Cost, Throttle
from aksnap.exporter.client import Connection, RawClient, SelectionError, open_channel
from aksnap.exporter.decode import decode_page
from aksnap.exporter.requests import list_request

__all__ = ["EventFollower", "FollowStats", "result_session", "subscription_request"]

_EVENTS_PATH = "/armonik.api.grpc.v1.events.Events/GetEvents"
_TASK_STATUS = {v.number: v.name.removeprefix("TASK_STATUS_")
                for v in task_status_pb2.DESCRIPTOR.enum_types_by_name["TaskStatus"].values}
_RESULT_STATUS = {v.number: v.name.removeprefix("RESULT_STATUS_")
                  for v in result_status_pb2.DESCRIPTOR.enum_types_by_name["ResultStatus"].values}
# Hand events on this often (what arrived meanwhile, as one batch).
FLUSH_S = 0.05
# Backoff between subscriptions after the stream ended or failed.
RETRY_FIRST_S, RETRY_MAX_S = 0.1, 5.0

Batch = list[tuple[str, str, str]]


@dataclass
class FollowStats:
    events: int = 0          # events received (every subscription)
    subscriptions: int = 0   # streams opened (1 + resubscriptions)
    drops: int = 0           # streams that ended or failed while the follower ran
    subscribed_at: float = 0.0  # time.time() of the first subscription (0: none yet)


class EventFollower(threading.Thread):
    """Subscribe to ``session_id``'s events on ``conn`` and call ``sink(batch)`` with each batch
    of tuples (see the module docstring) until :meth:`stop`, from a second thread that hands
    on what arrived every ``FLUSH_S`` seconds: the stream's reads block until the next event,
    so a batch flushed only by them kept a burst's last events (the end of the replay, a
    result's completion) until the cluster next changed.

    ``results``: which results' events to ask for: ``"all"`` (default), ``"none"`` (task events
    only: ``returned_events`` NEW_TASK and TASK_STATUS_UPDATE), or a result id (a
    ``results_filters`` on that id: its NEW_RESULT, status and owner updates, and every task
    event). Each subscription replays the session's tasks and results first, so asking for
    fewer result events makes the replay (and the server's work) that much smaller."""

    def __init__(self, conn: Connection, session_id: str, sink: Callable[[Batch], None],
                 on_subscribe: Callable[[], None] | None = None, results: str = "all",
                 throttle: Throttle | None = None):
        super().__init__(name="aksnap-events", daemon=True)
        # the watch's load budget: each subscription's start takes a slot (a stream holds
        # none: it stays open for hours), and is counted in :attr:`cost`
        self.throttle = throttle
        self.cost = throttle.cost() if throttle is not None else Cost()
        self.conn, self.session_id, self.sink = conn, session_id, sink
        self.results = results
        self.on_subscribe = on_subscribe or (lambda: None)
        self.stats = FollowStats()
        self._stopping = threading.Event()
        self._call = None
        self._lock = threading.Lock()
        self._buf: deque = deque()    # read, not yet handed on (appends and pops are atomic)

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()

    def run(self) -> None:
        flusher = threading.Thread(target=self._flusher, name="aksnap-events-flush", daemon=True)
        flusher.start()
        try:
            self._follow()
        finally:
            self._stopping.set()
            flusher.join()

    def _flusher(self) -> None:
        while not self._stopping.wait(FLUSH_S):
            self._flush()
        self._flush()

    def _flush(self) -> None:
        buf = self._buf
        k = len(buf)
        if k:
            pop = buf.popleft
            batch = [pop() for _ in range(k)]
            self.stats.events += k
            self.sink(batch)

    def _follow(self) -> None:
        wait = RETRY_FIRST_S
        request = subscription_request(self.session_id, self.results)
        parse = events_common_pb2.EventSubscriptionResponse.FromString
        while not self._stopping.is_set():
            if self.throttle is not None:
                self.cost.add_wait(self.throttle.acquire(self._stopping, hold=False))
                if self._stopping.is_set():
                    break
            channel = open_channel(self.conn, 64 * 2**20)
            started_at = time.time()
            try:
                stream = channel.unary_stream(
                    _EVENTS_PATH, request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=parse)
                with self._lock:
                    if self._stopping.is_set():
                        break
                    self._call = stream(request)
                self.stats.subscriptions += 1
                self.cost.note("GetEvents", started_at, 0.0, 0)
                if not self.stats.subscribed_at:
                    self.stats.subscribed_at = time.time()
                self.on_subscribe()
                got = self._drain(self._call)
                if got:
                    wait = RETRY_FIRST_S
                if not self._stopping.is_set():
                    self.stats.drops += 1
            except grpc.RpcError as e:
                if self._stopping.is_set():
                    break
                self.stats.drops += 1
                code = e.code() if hasattr(e, "code") else None
                # a stream that ends (UNAVAILABLE) is the stream's nature (Core drops them on
                # restarts, proxies on idle timeouts): only a refusal of work is strain
                if self.throttle is not None and code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    self.throttle.release("GetEvents", 0.0, None, strain=code.name, hold=False)
            finally:
                with self._lock:
                    self._call = None
                channel.close()
            if self._stopping.wait(wait):
                break
            wait = min(RETRY_MAX_S, wait * 2)

    def _drain(self, call) -> int:
        """Read one subscription until it ends; the flusher hands the events on in batches."""
        n = 0
        tstat, rstat = _TASK_STATUS, _RESULT_STATUS
        append = self._buf.append
        for e in call:
            kind = e.WhichOneof("update")
            if kind == "task_status_update":
                u = e.task_status_update
                append(("task", u.task_id, tstat.get(u.status, "UNSPECIFIED")))
            elif kind == "new_task":
                u = e.new_task
                append(("task", u.task_id, tstat.get(u.status, "UNSPECIFIED")))
            elif kind == "result_status_update":
                u = e.result_status_update
                append(("result", u.result_id, rstat.get(u.status, "UNSPECIFIED")))
            elif kind == "new_result":
                u = e.new_result
                append(("result", u.result_id, rstat.get(u.status, "UNSPECIFIED")))
            elif kind == "result_owner_update":
                u = e.result_owner_update
                append(("owner", u.result_id, u.current_owner_id))
            n += 1
        return n


def _result_id_filter(result_id: str):
    from armonik.protogen.common import filters_common_pb2 as fc
    from armonik.protogen.common import results_fields_pb2, results_filters_pb2 as rf

    field = results_fields_pb2.ResultField(result_raw_field=results_fields_pb2.ResultRawField(
        field=results_fields_pb2.RESULT_RAW_ENUM_FIELD_RESULT_ID))
    return rf.Filters(**{"or": [rf.FiltersAnd(**{"and": [rf.FilterField(
        field=field, filter_string=fc.FilterString(
            value=result_id, operator=fc.FILTER_STRING_OPERATOR_EQUAL))]})]})


def subscription_request(session_id: str, results: str = "all"):
    """The ``EventSubscriptionRequest`` of :class:`EventFollower` (see its ``results``)."""
    from armonik.protogen.common import events_common_pb2 as ec

    if results == "all":
        return ec.EventSubscriptionRequest(session_id=session_id)
    if results == "none":
        return ec.EventSubscriptionRequest(session_id=session_id, returned_events=[
            ec.EVENTS_ENUM_NEW_TASK, ec.EVENTS_ENUM_TASK_STATUS_UPDATE])
    return ec.EventSubscriptionRequest(session_id=session_id,
                                       results_filters=_result_id_filter(results))


def result_session(client: RawClient, result_id: str) -> str:
    """The session of ``result_id`` (ListResults on its id); SelectionError when unknown."""
    filters = _result_id_filter(result_id)
    rows = decode_page("results", client.call("results", list_request("results", filters, 0, 1))).rows
    if not rows.num_rows:
        raise SelectionError(f"unknown result id {result_id} at {client.conn.endpoint}; check the "
                          "id (aksnap lineage in a bundle, or armonik result list)")
    return rows.column("session_id")[0].as_py()
