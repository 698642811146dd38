"""`aksnap export` follows armonik-cli's habits, and names the right cause when the endpoint
is not what it seems.

- ``-o/--output`` is the summary's format (table, json, yaml; any case; ``AK_OUTPUT``), never
  the bundle directory, which is ``--out`` only;
- ``-c/--config FILE`` names the YAML connection file (as ``AKCONFIG``), and armonik-cli's
  default config file is read when no endpoint is given otherwise;
- an https:// endpoint on a plaintext port, a gRPC server that is not ArmoniK and an HTTP/1
  server each get their own sentence, at once (no retries: retrying cannot change them).

Real gRPC against the simulated control plane; the foreign servers are real sockets too.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent import futures

import grpc
import pytest
import yaml
from typer.testing import CliRunner

from aksnap.bundle import read_manifest
from aksnap.cli import app
from aksnap.exporter import ExportError, export, resolve_connection
from aksnap.exporter.client import armonik_cli_config_path
from aksnap.fixtures.server import SimulatedControlPlane, synthetic_cluster

runner = CliRunner()
ENV = ("AK_ENDPOINT", "AKCONFIG", "AK_CERTIFICATE_AUTHORITY", "AK_CLIENT_CERTIFICATE",
       "AK_CLIENT_KEY", "AK_OUTPUT")


@pytest.fixture(scope="module")
def endpoint():
    with SimulatedControlPlane(synthetic_cluster(120, n_sessions=2, seed=5)) as cp:
        yield cp.start()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for k in ENV:
        monkeypatch.delenv(k, raising=False)
    # armonik-cli's default config file lives under $XDG_CONFIG_HOME: the test's own.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)


def export_cli(*args):
    return runner.invoke(app, ["export", *map(str, args)])


# -- -o/--output is the format -----------------------------------------------------------------

def test_dash_o_json_is_the_format_not_a_folder_named_json(endpoint, tmp_path):
    """Given `aksnap export ... --out b -o json` (which used to create a folder named json),
    when run, then stdout is the JSON summary, the bundle is at b and no ./json exists."""
    r = export_cli("--endpoint", endpoint, "--all", "--out", "b", "-q", "-o", "json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["rows"]["tasks"] == 120 and summary["path"] == str(tmp_path / "b")
    assert not (tmp_path / "json").exists()
    assert read_manifest(tmp_path / "b").tables["tasks"].rows == 120


def test_output_is_case_insensitive_and_yaml_is_offered(endpoint):
    """Given -o YAML, when exported, then stdout is one YAML document with the summary."""
    r = export_cli("--endpoint", endpoint, "--all", "--out", "b", "-q", "--output", "YAML")
    assert r.exit_code == 0, r.output
    doc = yaml.safe_load(r.stdout)
    assert doc["rows"]["tasks"] == 120 and doc["snapshot"] in ("final", "live")


def test_ak_output_is_the_default_and_the_option_wins(endpoint, monkeypatch):
    """Given AK_OUTPUT=json, when exported without -o, then the summary is JSON; with
    -o table, then it is the table."""
    monkeypatch.setenv("AK_OUTPUT", "json")
    r = export_cli("--endpoint", endpoint, "--all", "--out", "b", "-q")
    assert r.exit_code == 0 and json.loads(r.stdout)["rows"]["tasks"] == 120
    r = export_cli("--endpoint", endpoint, "--all", "--out", "c", "-q", "-o", "table")
    assert r.exit_code == 0 and "rows/s" in r.stdout


def test_a_format_the_summary_has_not_is_one_sentence_and_nothing_is_written(endpoint, tmp_path):
    """Given -o csv (the summary is one record, not a table), then exit 2, one sentence
    naming what this command writes, and no bundle."""
    r = export_cli("--endpoint", endpoint, "--all", "--out", "b", "-o", "csv")
    assert r.exit_code == 2
    assert r.stderr.strip() == ("aksnap: error: unknown output format 'csv' (from -o/--output); "
                                "this command writes table, json, yaml")
    assert not (tmp_path / "b").exists()


def test_the_deprecated_format_option_still_works_and_is_hidden(endpoint):
    """Given a script written before -o (`--format json`), then it still gets JSON; the help
    shows -o/--output only."""
    r = export_cli("--endpoint", endpoint, "--all", "--out", "b", "-q", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["rows"]["tasks"] == 120
    assert "--format" not in runner.invoke(app, ["export", "-h"]).stdout


def test_help_shows_the_conventions():
    """Given `aksnap export -h`, then -o is --output, --out has no short form, -c is
    --config, flags show no <bool>, and --max-message-size and the page halving are said."""
    h = " ".join(runner.invoke(app, ["export", "-h"], env={"COLUMNS": "400"}).stdout.split())
    assert "--output -o" in h and "--config -c" in h and "--out DIR" in h
    assert "<bool>" not in h and "--max-message-size" in h and "server's send limit" in h


# -- -c/--config and armonik-cli's default config file -------------------------------------------

def _armonik_cli_config(text: str):
    path = armonik_cli_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_config_option_names_the_connection_file(endpoint, tmp_path):
    """Given a YAML file with armonik-cli's keys, when `aksnap export -c FILE`, then its
    endpoint is used."""
    conf = tmp_path / "cluster.yml"
    conf.write_text(f"endpoint: {endpoint}\ndebug: false\noutput: json\n")
    r = export_cli("-c", conf, "--all", "--out", "b", "-q")
    assert r.exit_code == 0, r.output
    assert read_manifest(tmp_path / "b").source["endpoint"] == endpoint


def test_precedence_option_env_config_file_default_file(tmp_path, monkeypatch):
    """Given an endpoint in the default file, in AKCONFIG, in -c, in AK_ENDPOINT and as an
    option, then each beats the ones after it: option > env > -c > AKCONFIG > default file."""
    _armonik_cli_config("endpoint: default-host:1\n")
    assert resolve_connection().endpoint == "default-host:1"
    (tmp_path / "ak.yml").write_text("endpoint: akconfig-host:2\n")
    monkeypatch.setenv("AKCONFIG", str(tmp_path / "ak.yml"))
    assert resolve_connection().endpoint == "akconfig-host:2"
    (tmp_path / "c.yml").write_text("endpoint: c-host:3\n")
    assert resolve_connection(config=tmp_path / "c.yml").endpoint == "c-host:3"
    monkeypatch.setenv("AK_ENDPOINT", "env-host:4")
    assert resolve_connection(config=tmp_path / "c.yml").endpoint == "env-host:4"
    assert resolve_connection("opt-host:5", config=tmp_path / "c.yml").endpoint == "opt-host:5"


def test_armonik_cli_default_file_is_read_when_no_endpoint_is_given(endpoint, tmp_path):
    """Given no option, variable or AKCONFIG, and armonik-cli's config.yml as armonik-cli writes
    it (endpoint plus its own keys), when exported, then its endpoint is used."""
    _armonik_cli_config(f"endpoint: {endpoint}\ndebug: false\nverbose: false\noutput: auto\n"
                        "table_columns: []\n")
    r = export_cli("--all", "--out", "b", "-q")
    assert r.exit_code == 0, r.output


def test_default_file_is_not_read_when_an_endpoint_is_given(endpoint, tmp_path):
    """Given a default file naming a CA that does not exist (another cluster's settings), when
    exported with --endpoint, then that file is not read: its CA never goes to this endpoint."""
    _armonik_cli_config("endpoint: other:1\ncertificate_authority: /nowhere/ca.pem\n")
    r = export_cli("--endpoint", endpoint, "--all", "--out", "b", "-q")
    assert r.exit_code == 0, r.output
    assert read_manifest(tmp_path / "b").source["tls"] is False


def test_a_broken_default_file_is_a_sentence_naming_it(tmp_path):
    """Given a default config file with broken YAML and no endpoint elsewhere, then exit 2 with
    a sentence naming armonik-cli's file and the line."""
    path = _armonik_cli_config("endpoint: [unclosed\n")
    r = export_cli("--all", "--out", "b")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert f"armonik-cli's config file {path} is not valid YAML at line 2" in r.stderr


def test_no_endpoint_anywhere_names_every_place_looked(tmp_path):
    r = export_cli("--all", "--out", "b")
    assert r.exit_code == 2
    assert "-c/--config" in r.stderr and str(armonik_cli_config_path()) in r.stderr


# -- the endpoint is not what it seems -----------------------------------------------------------

def _quick(fn):
    """fn() raises ExportError at once (the default retry policy would wait 20 s or more)."""
    t0 = time.monotonic()
    with pytest.raises(ExportError) as e:
        fn()
    assert time.monotonic() - t0 < 5
    assert "\n" not in str(e.value)
    return str(e.value)


def test_https_against_a_plaintext_control_plane(endpoint, tmp_path):
    """Given the plaintext simulated control plane, when exported with https://HOST:PORT,
    then the sentence says the port does not speak TLS (not a certificate problem), at once;
    through the CLI, exit 1 and one line."""
    msg = _quick(lambda: export(f"https://{endpoint}", tmp_path / "b", all_sessions=True))
    assert "does not speak TLS" in msg and "plaintext" in msg and "certificate" not in msg.split(":")[0]
    r = export_cli("--endpoint", f"https://{endpoint}", "--all", "--out", "b", "-q")
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and "does not speak TLS" in r.stderr
    assert not (tmp_path / "b").exists()


class _ImplementsNothing(grpc.GenericRpcHandler):
    def service(self, handler_call_details):
        return None  # every method: UNIMPLEMENTED


def test_a_grpc_server_that_is_not_armonik(tmp_path):
    """Given a gRPC server that implements nothing (another service's port), when exported,
    then the sentence says it speaks gRPC but is not an ArmoniK control plane, at once."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((_ImplementsNothing(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        msg = _quick(lambda: export(f"127.0.0.1:{port}", tmp_path / "b", all_sessions=True))
    finally:
        server.stop(0)
    assert "speaks gRPC but is not an ArmoniK control plane" in msg
    assert "check the host and port" in msg


@pytest.fixture
def http1_server():
    """A plain HTTP/1.1 server on loopback: answers 400 to anything, as a web server does."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def test_an_http1_server(http1_server, tmp_path):
    """Given an HTTP/1.1 server, when exported, then the sentence says it answers HTTP/1 and
    is not an ArmoniK control plane, at once; with https://, that it does not speak TLS."""
    msg = _quick(lambda: export(http1_server, tmp_path / "b", all_sessions=True))
    assert "answers HTTP/1" in msg and "not an ArmoniK control plane" in msg
    msg = _quick(lambda: export(f"https://{http1_server}", tmp_path / "b", all_sessions=True))
    assert "does not speak TLS" in msg
