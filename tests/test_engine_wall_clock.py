"""Scenarios can be anchored on the wall clock without changing what they are."""

import pyarrow.compute as pc

from aksnap.fixtures.scenarios import build_scenario, build_scenario_now


def test_anchored_scenario_keeps_ids_and_durations_and_moves_only_the_epoch():
    """Given the demo scenario built at its seeded epoch and again anchored at a chosen `now`,
    when both are viewed at their snapshot instant,
    then the ids, statuses and durations agree, and the anchored one's snapshot instant is `now`."""
    now = 1_900_000_000.0
    a = build_scenario("demo", seed=3)
    b = build_scenario_now("demo", seed=3, now=now)
    assert a.truth == b.truth and a.snapshot_at == b.snapshot_at
    assert abs(b.cluster.start_time + b.snapshot_at - now) < 1e-6
    va, vb = a.cluster.view(a.snapshot_at), b.cluster.view(b.snapshot_at)
    assert va.tasks.column("id").equals(vb.tasks.column("id"))
    assert va.tasks.column("status").equals(vb.tasks.column("status"))
    shift = b.cluster.start_time - a.cluster.start_time
    da = pc.subtract(va.tasks.column("ended_at"), va.tasks.column("created_at"))
    db = pc.subtract(vb.tasks.column("ended_at"), vb.tasks.column("created_at"))
    diff = pc.max(pc.abs(pc.cast(pc.subtract(da, db), "int64"))).as_py() or 0
    assert diff <= 2  # microseconds of float rounding at most
    created_a = pc.min(va.tasks.column("created_at")).value / 1e6
    created_b = pc.min(vb.tasks.column("created_at")).value / 1e6
    assert abs((created_b - created_a) - shift) < 1e-3
