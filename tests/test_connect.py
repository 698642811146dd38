"""Connecting: one resolver for every command, and a control plane that is not there.

Every command that connects (``export``, ``export --update``, ``watch``) resolves its
connection options through the one function :func:`aksnap.exporter.client.resolve_connection`,
so the same mistake gets the same sentence and exit 2 everywhere. A refused connection fails
at once with a sentence naming the endpoint, unless ``--retry-for SECONDS`` asks to wait; a
retry is announced on stderr once.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from typer.testing import CliRunner

from aksnap.bundle import read_manifest, sha256_file
from aksnap.cli import app
from aksnap.exporter import ExportError, RetryPolicy, export, update
from aksnap.exporter.testing import make_pki
from aksnap.fixtures.server import Faults, SimulatedControlPlane, synthetic_cluster

runner = CliRunner()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for k in ("AK_ENDPOINT", "AKCONFIG", "AK_CERTIFICATE_AUTHORITY", "AK_CLIENT_CERTIFICATE",
              "AK_CLIENT_KEY", "AK_OUTPUT"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A running control plane, a bundle exported from it, and PEM files on disk."""
    d = tmp_path_factory.mktemp("connect")
    cluster = synthetic_cluster(200, seed=3)
    pki = make_pki()
    (d / "key.pem").write_bytes(pki.client_key_pem)
    (d / "cert.pem").write_bytes(pki.client_cert_pem)
    (d / "ca.pem").write_bytes(pki.ca_pem)
    with SimulatedControlPlane(cluster) as cp:
        ep = cp.start()
        export(ep, d / "parent", all_sessions=True)
        yield ep, d, cluster.sessions.column("session_id")[0].as_py()


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def _files(bundle):
    return {p.name: sha256_file(p) for p in bundle.iterdir()}


def _commands(ep, d, session, out):
    """The same connection options on each command that connects."""
    return {
        "export": ["export", "--endpoint", ep, "--all", "--out", str(out), "-q"],
        "export --update": ["export", "--update", str(d / "parent"), "--out", str(out), "-q"],
        "watch": ["watch", "--endpoint", ep, "--session", session, "--once"],
    }


# -- item 8: one resolver ----------------------------------------------------------------------

@pytest.mark.parametrize("extra,words", [
    (["--client-key", "{d}/key.pem"], "mutual TLS needs both --client-certificate and "
                                      "--client-key"),
    (["--client-certificate", "{d}/cert.pem"], "mutual TLS needs both --client-certificate "
                                               "and --client-key"),
    (["--certificate-authority", "{d}/missing-ca.pem"], "cannot read the certificate "
                                                        "authority"),
    (["--client-certificate", "{d}/cert.pem", "--client-key", "{d}/missing-key.pem"],
     "cannot read the client key"),
], ids=["lone key", "lone certificate", "missing CA file", "missing key file"])
def test_unusable_connection_options_are_refused_identically_by_every_command(served, tmp_path,
                                                                              extra, words):
    """Given connection options that cannot work (a lone --client-key would silently run in
    plaintext), when export, export --update and watch are each given them, then each exits 2
    with the same one sentence, writes nothing, and the updated bundle is untouched."""
    ep, d, session = served
    before = _files(d / "parent")
    extra = [a.format(d=d) for a in extra]
    sentences = {}
    for name, args in _commands(ep, d, session, tmp_path / "out").items():
        r = runner.invoke(app, args + extra)
        assert r.exit_code == 2, (name, r.output)
        assert "Traceback" not in r.output, (name, r.output)
        assert r.exception is None or isinstance(r.exception, SystemExit), (name, r.output)
        errors = [line for line in r.stderr.splitlines() if line.startswith("aksnap: error:")]
        assert len(errors) == 1 and words in errors[0], (name, r.stderr)
        sentences[name] = errors[0]
        assert not (tmp_path / "out").exists(), name
    assert len(set(sentences.values())) == 1, sentences
    assert _files(d / "parent") == before


def test_update_uses_the_same_resolver_from_python(served, tmp_path):
    """Given the Python API, when update() is given a lone client key in its connection
    options, then it is refused as the CLI refuses it (no plaintext fallback)."""
    from aksnap.exporter.client import ConnectionOptions, ConnectionSettingsError

    ep, d, _ = served
    with pytest.raises(ConnectionSettingsError, match="mutual TLS needs both"):
        update(d / "parent", tmp_path / "u",
               endpoint=ConnectionOptions(client_key=str(d / "key.pem")))
    assert not (tmp_path / "u").exists()


# -- item 15: nothing listening ------------------------------------------------------------------

def test_connection_refused_fails_fast_with_a_sentence_naming_the_endpoint(tmp_path):
    """Given an endpoint where nothing listens, when exported (and updated, and watched),
    then each exits non-zero within a few seconds (not 33 s), with one sentence that names the
    endpoint, says the connection was refused and names --retry-for."""
    port = _free_port()
    ep = f"127.0.0.1:{port}"
    for args in (["export", "--endpoint", ep, "--all", "--out", str(tmp_path / "b")],
                 ["watch", "--endpoint", ep, "--session", "s", "--once"]):
        t0 = time.monotonic()
        r = runner.invoke(app, args)
        took = time.monotonic() - t0
        assert r.exit_code not in (0, None) and took < 5, (args, took, r.output)
        errors = [line for line in r.stderr.splitlines() if line.startswith("aksnap: error:")]
        assert len(errors) == 1, r.stderr
        assert ep in errors[0] and "connection refused" in errors[0].lower(), errors
        assert "--retry-for" in errors[0]
        assert "Traceback" not in r.output
    assert not (tmp_path / "b").exists()


def test_an_update_against_a_refused_endpoint_fails_fast_and_keeps_the_bundle(served, tmp_path):
    ep, d, _ = served
    before = _files(d / "parent")
    t0 = time.monotonic()
    r = runner.invoke(app, ["export", "--update", str(d / "parent"), "--endpoint",
                            f"127.0.0.1:{_free_port()}", "-q"])
    assert r.exit_code == 1 and time.monotonic() - t0 < 5, r.output
    assert "connection refused" in r.stderr.lower()
    assert _files(d / "parent") == before


def test_retry_for_keeps_trying_about_that_long_and_says_so_once(tmp_path):
    """Given nothing listening, when exported with --retry-for 3, then it keeps trying for
    about 3 s, says on stderr once that it is retrying and why, then fails with the sentence."""
    ep = f"127.0.0.1:{_free_port()}"
    t0 = time.monotonic()
    r = runner.invoke(app, ["export", "--endpoint", ep, "--all", "--out", str(tmp_path / "b"),
                            "--retry-for", "3", "-q"])
    took = time.monotonic() - t0
    assert r.exit_code == 1, r.output
    assert 2.5 <= took < 10, took
    notices = [line for line in r.stderr.splitlines() if line.startswith("aksnap: warning:")]
    assert len(notices) == 1 and "retrying" in notices[0] and ep in notices[0], r.stderr
    assert "connection refused" in notices[0].lower() and "3 s" in notices[0]
    assert "aksnap: error:" in r.stderr and not (tmp_path / "b").exists()


def test_retry_for_waits_for_a_control_plane_that_starts_late(tmp_path):
    """Given a control plane that starts listening 1.5 s after the export began, when exported
    with --retry-for 20, then the export waits for it and succeeds."""
    port = _free_port()
    cluster = synthetic_cluster(100, seed=5)
    cp = SimulatedControlPlane(cluster)
    timer = threading.Timer(1.5, lambda: cp.start("127.0.0.1", port))
    timer.start()
    try:
        r = runner.invoke(app, ["export", "--endpoint", f"127.0.0.1:{port}", "--all", "--out",
                                str(tmp_path / "b"), "--retry-for", "20", "-q", "-o", "json"])
    finally:
        timer.join()
        cp.stop()
    assert r.exit_code == 0, r.output
    assert read_manifest(tmp_path / "b").tables["tasks"].rows == 100
    assert [line for line in r.stderr.splitlines() if "retrying" in line] == [
        f"aksnap: warning: the control plane at 127.0.0.1:{port} is unreachable (connection "
        "refused); retrying for up to 20 s"], r.stderr


def test_retry_for_governs_an_outage_mid_export(tmp_path):
    """Given a control plane that becomes UNAVAILABLE for 2 s after the first pages, when
    exported with a retry policy of retry_for=30 (and attempts too few to span the outage on
    their own), then the export rides it out; with retry_for=0.5 it gives up with a sentence."""
    cluster = synthetic_cluster(3000, seed=4)
    with SimulatedControlPlane(cluster) as cp:
        ep = cp.start()

        class Outage:
            """After 500 task rows, 2 s of UNAVAILABLE."""
            rows = 0

            def start(self, table, total):
                pass

            def advance(self, table, n):
                self.rows += n
                if self.rows >= 500 and not getattr(self, "fired", False):
                    self.fired = True
                    cp.faults.unavailable_rate = 1.0
                    threading.Timer(2.0, lambda: setattr(cp.faults, "unavailable_rate",
                                                         0.0)).start()

            def close(self):
                pass

        policy = RetryPolicy(attempts=3, initial_s=0.05, max_s=0.2, retry_for=30)
        s = export(ep, tmp_path / "b", all_sessions=True, page_size=100, jobs=2,
                   progress=Outage(), retry=policy)
        assert s.rows["tasks"] == 3000 and s.manifest["consistency"]["retries"] > 3
        cp.faults = Faults()
        t0 = time.monotonic()
        with pytest.raises(ExportError, match="UNAVAILABLE"):
            export(ep, tmp_path / "c", all_sessions=True, page_size=100, jobs=2,
                   progress=Outage(),
                   retry=RetryPolicy(initial_s=0.05, max_s=0.2, retry_for=0.5))
        assert time.monotonic() - t0 < 10
        cp.faults = Faults()
    assert not (tmp_path / "c").exists()
