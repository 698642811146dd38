"""The event-stream fault knobs: lost, duplicated and reordered events, and a dropped stream.

Given a frozen htcmock session (its replay is a few hundred NEW_TASK / NEW_RESULT events),
each knob changes the stream as it says, reproducibly for a seed; the CLI flags reach it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter

import grpc
import pytest
from armonik.protogen.client.events_service_pb2_grpc import EventsStub
from armonik.protogen.common import events_common_pb2

from aksnap.fixtures.scenarios import build_scenario
from aksnap.fixtures.server import Faults, SimulatedControlPlane


def _key(e) -> tuple[str, str]:
    kind = e.WhichOneof("update")
    body = getattr(e, kind)
    return kind, getattr(body, "task_id", "") or getattr(body, "result_id", "")


@pytest.fixture(scope="module")
def served():
    scenario = build_scenario("htcmock", seed=4, tasks=150)
    with SimulatedControlPlane(scenario) as cp:
        ep = cp.start()
        session = scenario.cluster.session_ids[0].as_py()
        yield cp, ep, session


def replay(cp, ep, session, faults: Faults, quiet_s: float = 0.5):
    """Every event the stream sends until it stays quiet for ``quiet_s`` (or ends), and the
    status code it ended with (None: still open)."""
    cp.faults = faults
    req = events_common_pb2.EventSubscriptionRequest(session_id=session)
    got, code = [], None
    with grpc.insecure_channel(ep) as ch:
        call = EventsStub(ch).GetEvents(req, timeout=30)
        try:
            import threading

            last = [time.monotonic()]
            done = threading.Event()

            def watchdog():
                while not done.wait(0.05):
                    if time.monotonic() - last[0] > quiet_s:
                        call.cancel()
                        return

            threading.Thread(target=watchdog, daemon=True).start()
            for e in call:
                got.append(e)
                last[0] = time.monotonic()
            done.set()
        except grpc.RpcError as err:
            done.set()
            code = None if err.code() == grpc.StatusCode.CANCELLED else err.code()
    cp.faults = Faults()
    return got, code


def test_clean_stream_is_the_baseline(served):
    cp, ep, session = served
    clean, code = replay(cp, ep, session, Faults())
    assert code is None and len(clean) > 300
    assert len(set(map(_key, clean))) == len(clean)  # each object once


def test_loss_drops_a_seeded_share_of_events(served):
    cp, ep, session = served
    clean, _ = replay(cp, ep, session, Faults())
    lossy, _ = replay(cp, ep, session, Faults(events_loss_rate=0.3, seed=7))
    assert 0.55 * len(clean) < len(lossy) < 0.85 * len(clean)
    assert set(map(_key, lossy)) < set(map(_key, clean))


def test_duplicates_send_some_events_twice(served):
    cp, ep, session = served
    clean, _ = replay(cp, ep, session, Faults())
    dup, _ = replay(cp, ep, session, Faults(events_duplicate_rate=0.2, seed=1))
    counts = Counter(map(_key, dup))
    twice = sum(1 for n in counts.values() if n == 2)
    assert set(counts) == set(map(_key, clean)) and max(counts.values()) == 2
    assert 0.1 * len(clean) < twice < 0.3 * len(clean)


def test_reordering_permutes_within_windows_and_is_seeded(served):
    cp, ep, session = served
    clean, _ = replay(cp, ep, session, Faults())
    a, _ = replay(cp, ep, session, Faults(events_reorder_window=16, seed=3))
    b, _ = replay(cp, ep, session, Faults(events_reorder_window=16, seed=3))
    keys = list(map(_key, clean))
    ka = list(map(_key, a))
    assert sorted(ka) == sorted(keys) and ka != keys
    # moved only within its window of 16
    pos = {k: i for i, k in enumerate(keys)}
    assert all(abs(pos[k] - i) < 16 for i, k in enumerate(ka))
    # each stream draws its own sequence (the n-th stream of the seed): still a permutation
    assert sorted(map(_key, b)) == sorted(keys)


def test_stream_drop_after_n_events_ends_unavailable(served):
    cp, ep, session = served
    got, code = replay(cp, ep, session, Faults(events_drop_after=50))
    assert len(got) == 50 and code == grpc.StatusCode.UNAVAILABLE


def test_stream_drop_after_seconds_ends_a_quiet_stream(served):
    cp, ep, session = served
    started = time.monotonic()
    got, code = replay(cp, ep, session, Faults(events_drop_after_s=0.5), quiet_s=5)
    assert code == grpc.StatusCode.UNAVAILABLE
    assert 0.4 < time.monotonic() - started < 3
    assert len(got) > 300  # the replay went out first


def test_event_fault_flags_reach_the_server_and_bad_values_exit_2():
    proc = subprocess.Popen([sys.executable, "-m", "aksnap", "simulate", "--scenario", "chain",
                             "--tasks", "30", "--events-drop-after", "5", "--events-loss", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ep = proc.stdout.readline().strip()
        session = None
        from armonik.client import ArmoniKSessions

        with grpc.insecure_channel(ep) as ch:
            _, sessions = ArmoniKSessions(ch).list_sessions()
            session = sessions[0].session_id
            call = EventsStub(ch).GetEvents(
                events_common_pb2.EventSubscriptionRequest(session_id=session), timeout=10)
            got = []
            with pytest.raises(grpc.RpcError) as err:
                for e in call:
                    got.append(e)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE and len(got) == 5
        proc.send_signal(signal.SIGINT)
        _, text = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "events_drop_after=5" in text and "events_loss_rate=0.1" in text
    for args in (["--events-loss", "1.5"], ["--events-reorder", "-1"]):
        r = subprocess.run([sys.executable, "-m", "aksnap", "simulate", "--scenario", "chain",
                            *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and r.stderr.startswith("aksnap: error: ")
        assert args[0] in r.stderr

