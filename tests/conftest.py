"""Shared pytest configuration. Layer-specific fixtures live in the test modules that use them;
the exported `demo` and `hostile` scenarios, read by several drawing commands, live here."""

import os
import shutil

import pytest

# The simulated control planes of the suite serve nobody else: no request-rate cap by default
# (the production default, 10 requests/s, would make the suite's hundreds of exports wait for
# their budget). tests/test_budget.py sets its own caps, and checks the default without this.
os.environ["AKSNAP_MAX_RPS"] = "inf"


def _export_scenario(name: str, out, seed: int = 1):
    """Serve a seeded scenario over real gRPC with the simulated control plane, export it."""
    from aksnap.exporter import export
    from aksnap.fixtures.scenarios import build_scenario
    from aksnap.fixtures.server import SimulatedControlPlane

    sc = build_scenario(name, seed=seed)
    with SimulatedControlPlane(sc) as cp:
        export(cp.start("127.0.0.1", 0), out, all_sessions=True)
    return out, sc.truth


@pytest.fixture(scope="session")
def demo_bundle(tmp_path_factory):
    """The `demo` scenario (a failure chain and a blocked result), exported over real gRPC:
    (bundle path, truth). Shared by the graph, trace and report tests."""
    return _export_scenario("demo", tmp_path_factory.mktemp("demo") / "bundle")


@pytest.fixture(scope="session")
def hostile_bundle(tmp_path_factory):
    """The `hostile` scenario (markup, scripts, NUL, bidi overrides in messages, result names,
    host names, application fields), exported over real gRPC: (bundle path, truth)."""
    return _export_scenario("hostile", tmp_path_factory.mktemp("hostile") / "bundle")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


# Chromium driven by Playwright, for the pages of aksnap report and aksnap serve
@pytest.fixture(scope="module")
def browser():
    # skipped on a machine without them; under .ci/run (AKSNAP_REQUIRE_TOOLS) a failure instead
    required = bool(os.environ.get("AKSNAP_REQUIRE_TOOLS"))
    if CHROMIUM is None:
        (pytest.fail if required else pytest.skip)("chromium is not installed (.ci/run installs it with apt)")
    if required:
        import playwright.sync_api as sync_api
    else:
        sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                                       "(the test extra)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()
