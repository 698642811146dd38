"""`aksnap simulate`: first stdout line is HOST:PORT, clean exit on signals, exit 2 on bad input."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import grpc
import pytest
from armonik.client import ArmoniKSessions, ArmoniKVersions


def simulate(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "aksnap", "simulate", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**{k: v for k, v in os.environ.items() if k != "AK_OUTPUT"}, "PYTHONUNBUFFERED": "0"},
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_simulate_prints_the_endpoint_first_serves_it_and_exits_0_on_signal(sig):
    proc = simulate("--scenario", "chain", "--tasks", "5", "--seed", "1")
    try:
        endpoint = proc.stdout.readline().strip()
        host, port = endpoint.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        with grpc.insecure_channel(endpoint) as ch:
            assert ArmoniKVersions(ch).list_versions()["core"]
            total, sessions = ArmoniKSessions(ch).list_sessions()
            assert total >= 1
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def _fails_with_one_sentence(*args):
    proc = simulate(*args)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, (out, err)
    assert out == ""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("aksnap: error: "), err
    return lines[0]


@pytest.mark.parametrize("fmt", ["json", "YAML"])
def test_simulate_output_format_keeps_the_endpoint_first(fmt):
    """Given `aksnap simulate -o json` (or YAML, any case), then the first stdout line is one
    JSON object (or `endpoint: HOST:PORT`) naming the endpoint it serves."""
    import json

    proc = simulate("--scenario", "chain", "--tasks", "5", "-o", fmt)
    try:
        first = proc.stdout.readline().strip()
        if fmt == "json":
            doc = json.loads(first)
            assert doc["scenario"] == "chain" and doc["tls"] is False
            endpoint = doc["endpoint"]
        else:
            assert first.startswith("endpoint: ")
            endpoint = first.split(": ", 1)[1]
        with grpc.insecure_channel(endpoint) as ch:
            assert ArmoniKVersions(ch).list_versions()["core"]
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


def test_simulate_unknown_output_format_exits_2():
    line = _fails_with_one_sentence("--scenario", "chain", "-o", "xml")
    assert "unknown output format 'xml'" in line


def test_unknown_scenario_exits_2_naming_the_choices():
    line = _fails_with_one_sentence("--scenario", "nope")
    assert "'nope'" in line and "htcmock" in line


def test_negative_tasks_exit_2():
    assert "--tasks" in _fails_with_one_sentence("--scenario", "chain", "--tasks", "-1")


def test_port_in_use_exits_2():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = _fails_with_one_sentence("--scenario", "chain", "--tasks", "3", "--port", str(port))
    assert str(port) in line


def test_speed_without_realtime_and_half_tls_are_refused():
    _fails_with_one_sentence("--scenario", "chain", "--speed", "3")
    _fails_with_one_sentence("--scenario", "chain", "--tls-cert", "x.pem")


def test_help_has_an_example():
    out = subprocess.run([sys.executable, "-m", "aksnap", "simulate", "--help"],
                         capture_output=True, text=True, timeout=60).stdout
    assert "Example: aksnap simulate --scenario" in out


def test_tls_files_that_are_not_pem_exit_2(tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    line = _fails_with_one_sentence("--scenario", "chain", "--tasks", "3",
                                    "--tls-cert", str(junk), "--tls-key", str(junk))
    assert "PEM" in line
    missing = _fails_with_one_sentence("--scenario", "chain", "--tls-cert", str(tmp_path / "nope.pem"),
                                       "--tls-key", str(junk))
    assert "nope.pem" in missing


def test_simulate_serves_mutual_tls_with_the_given_certificates(tmp_path):
    import importlib

    from armonik.common.channel import create_channel

    sys.path.insert(0, os.path.dirname(__file__))
    pki = importlib.import_module("test_server_support").make_pki()
    files = {}
    for name in ("server", "server_key", "ca", "client", "client_key"):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_bytes(pki[name])
    proc = simulate("--scenario", "chain", "--tasks", "3", "--tls-cert", str(files["server"]),
                    "--tls-key", str(files["server_key"]), "--tls-client-ca", str(files["ca"]))
    try:
        endpoint = proc.stdout.readline().strip()
        with create_channel(f"https://{endpoint}", certificate_authority=pki["ca"],
                            client_certificate=pki["client"], client_key=pki["client_key"]) as ch:
            assert ArmoniKVersions(ch).list_versions()["api"]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "TLS" in err


def test_simulate_fault_flags_reach_the_server():
    proc = simulate("--scenario", "chain", "--tasks", "3", "--unavailable-rate", "1")
    try:
        endpoint = proc.stdout.readline().strip()
        with grpc.insecure_channel(endpoint) as ch:
            with pytest.raises(grpc.RpcError) as err:
                ArmoniKVersions(ch).list_versions()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        proc.send_signal(signal.SIGINT)
        _, err_text = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "unavailable_rate=1.0" in err_text


def test_fault_flags_out_of_range_exit_2():
    assert "--unavailable-rate" in _fails_with_one_sentence("--scenario", "chain", "--unavailable-rate", "2")
    _fails_with_one_sentence("--scenario", "chain", "--latency", "-1")


def test_simulate_signal_handler_takes_no_lock():
    """Given the SIGINT/SIGTERM handlers `aksnap simulate` installs while it serves, when one
    runs, then it takes no lock and the serve loop sees the stop request.

    A handler runs in the main thread between two bytecodes, so a lock it takes may be held by
    the very code it interrupted: ``threading.Event.set`` from the handler deadlocked when the
    signal landed while the loop's ``Event.wait`` held the event's lock, and simulate then hung
    forever, deaf to SIGTERM too (seen once in a few dozen Ctrl-C). Every lock a handler could
    take is a ``_thread`` lock entered from C, so the profiler sees each attempt."""
    import threading

    from aksnap.fixtures.commands import _stopped_by_signals

    lock_types = (type(threading.Lock()), type(threading.RLock()))
    taken = []

    def profile(frame, event, arg):
        if (event == "c_call" and getattr(arg, "__name__", "") in ("acquire", "__enter__")
                and isinstance(getattr(arg, "__self__", None), lock_types)):
            taken.append(frame.f_code.co_qualname)

    for sig in (signal.SIGINT, signal.SIGTERM):
        taken.clear()
        with _stopped_by_signals() as stop:
            handler = signal.getsignal(sig)
            assert not stop.wait(0)
            sys.setprofile(profile)
            try:
                handler(sig, None)
            finally:
                sys.setprofile(None)
            assert stop.wait(0), "the serve loop must see the stop request"
        assert not taken, f"the {sig.name} handler takes a lock in {taken}"
