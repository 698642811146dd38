"""Redaction: a bundle whose structure and timing are intact and whose identifying strings are
keyed pseudonyms, so it can be attached to a bug report (``docs/sharing.md``).

>>> from aksnap.redact import redact_bundle
>>> redact_bundle("run-42", "run-42-redacted", key_file="~/.aksnap-key")

How (and why this way):

- **Keyed and deterministic.** A pseudonym is HMAC-SHA256(key, kind + value): the same key
  gives the same pseudonym for the same string in every bundle (redacted runs stay comparable
  across captures), another key gives unlinkable ones, and nobody without the key can test a
  guess. The key never enters the bundle; its fingerprint (a hash of it) does.
- **Shapes kept.** A GUID becomes a GUID (version-4 shaped), a retry id ``ID###n`` becomes
  ``pseudonym(ID)###n`` (the analyzer's retry chains still group), ``""`` (Core's "unset":
  the client, no owner) stays ``""``, null stays null. Other ids become ``id-<24 hex>``; other
  strings ``<kind>-<16 hex>`` (``host-...``, ``app-...``), so a reader still sees what a
  column held. One id has one pseudonym wherever it appears (id columns, the lists, the
  messages), so every join, lineage, blocker and critical path answer is the original's with
  ids mapped.
- **Streaming and vectorised.** Tables are rewritten row group by row group; each column is
  dictionary-encoded, the HMAC is computed once per DISTINCT value of the row group, and the
  pseudonyms are put back with one Arrow ``take``. No per-row Python.
- **Messages** (``status_message``, ``output_error``): ``classes`` (default) keeps each
  message's shape and replaces ids (by their pseudonyms), every string the bundle redacts
  elsewhere (host names, pod ids, partitions, application fields, option keys and values,
  result names: by their pseudonyms), URLs, e-mail addresses, paths, IP addresses, quoted
  strings, dotted names (host names, namespaces; .NET's ``System.``, ``Microsoft.``,
  ``ArmoniK.``, ``Grpc.``, ``Google.`` names are kept), long hex strings and numbers by
  placeholders, so error classes still group; plain words stay. ``drop`` replaces every
  non-empty message by ``<dropped>``; ``keep`` keeps them as they are.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aksnap.bundle import (
    META_TABLE_KEY,
    META_VERSION_KEY,
    RESULT_STATUSES,
    SCHEMAS,
    SESSION_STATUSES,
    STATUS_DOMAIN,
    TABLES,
    TASK_OPTIONS_STRUCT,
    TASK_STATUSES,
    BundleError,
    Manifest,
    OpenBundle,
    utc_now_iso,
)
from aksnap.bundle_format import COST_FIELDS, COST_METHODS, GRPC_STATUS_NAMES
from aksnap.columns import KEEP, REDACTION
from aksnap.output import check_output_file

MESSAGE_MODES = ("classes", "drop", "keep")
METHOD = "hmac-sha256"
MIN_KEY_BYTES = 16
MAX_KEY_BYTES = 4096
DROPPED = "<dropped>"
#: How many distinct values of one kind are searched for inside messages (a bundle with more
#: distinct result names than this only has the first ones replaced by name in messages; the
#: generic rules still apply to the rest).
VOCABULARY_CAP = 200_000
#: Values that are not one word (spaces, markup) are searched literally; at most this many.
LITERAL_CAP = 512

#: The pseudonym's prefix, by kind of value ("id" has its own shapes).
PREFIX = {
    "partition": "partition-", "pod": "pod-", "host": "host-", "application_name": "app-",
    "application_version": "version-", "application_namespace": "namespace-",
    "application_service": "service-", "engine_type": "engine-", "name": "name-",
    "option_key": "key-", "option_value": "value-", "endpoint": "endpoint-",
    "release": "release-",
}
#: The rules: a kind of value (its pseudonym), "id", "message", "options" (a map: keys and
#: values), "task_options" (the sessions' struct, its fields ruled here), "opaque" (bytes),
#: "status" (a word of ArmoniK's status vocabulary: kept, anything else stops redaction),
#: "keep" (numbers, times, durations, flags). The tables' columns take theirs from the column
#: catalogue (``aksnap.columns``); the fields of the session options' struct from here.
_STRUCT_RULES = {"max_duration": KEEP, "max_retries": KEEP, "priority": KEEP,
                 "partition_id": "partition", "application_name": "application_name",
                 "application_version": "application_version",
                 "application_namespace": "application_namespace",
                 "application_service": "application_service",
                 "engine_type": "engine_type", "options": "options"}


def _carries_text(t: pa.DataType) -> bool:
    """Whether values of ``t`` can hold text or bytes (at any depth)."""
    if pa.types.is_dictionary(t):
        return _carries_text(t.value_type)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) \
            or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return True
    return any(_carries_text(t.field(i).type) for i in range(t.num_fields))


def plan_of(fields, rules: dict[str, str]) -> dict[str, str | None]:
    """A rule for each field of the format: its rule, or None (no rule: tests fail, redaction
    stops) when ``rules`` lists no rule for it, or when its rule is ``keep`` but its type
    holds text (a rule that would copy text as it is)."""
    def rule(f) -> str | None:
        r = rules.get(f.name)
        return None if r is None or (r == KEEP and _carries_text(f.type)) else r

    return {f.name: rule(f) for f in fields}


#: What redaction does with every column of every table: the column catalogue's rules
#: (aksnap.columns), over the format's fields (aksnap.bundle.SCHEMAS). tests/test_sharing_trust.py
#: fails when a column has no rule, and a column that is not in the plan, or has no rule (a
#: column the catalogue does not list, or whose "keep" would copy text), stops redaction with
#: its name.
PLAN: dict[str, dict[str, str | None]] = {t: plan_of(SCHEMAS[t], REDACTION.get(t, {}))
                                          for t in TABLES}
#: The same for the fields of the sessions' options struct.
STRUCT_PLAN: dict[str, str | None] = plan_of(TASK_OPTIONS_STRUCT, _STRUCT_RULES)
#: Parquet key-value metadata the format writes; the redacted files get the format's own
#: (the writer's schema), so the input's values never reach them. Any other entry stops
#: redaction (it could hold anything; it is neither copied nor dropped unseen).
KNOWN_PARQUET_METADATA = {b"ARROW:schema", META_VERSION_KEY, META_TABLE_KEY}
#: What stays as it is (said in the manifest's redaction record).
KEPT = ("statuses (ArmoniK's vocabulary only)", "timestamps", "durations", "sizes", "counts",
        "priorities", "retry numbers", "max_retries", "session flags",
        "versions (when version-shaped)", "the exporter's and the update's counts",
        "what the capture cost (numbers, call and status names)")


# -- the manifest's plan ---------------------------------------------------------------------

@dataclass(frozen=True)
class ListOf:
    """A JSON list whose every item follows ``item``."""

    item: Any


@dataclass(frozen=True)
class MapOf:
    """A JSON object whose keys are words of a vocabulary (``key``: a value rule), or ids
    (``key="id"``: pseudonymised), and whose values follow ``value``."""

    key: str
    value: Any


#: Written anew by the redaction (the format, the writer, the redaction record): the input's
#: value never reaches the output.
REGENERATED = "regenerated"
_TABLE_COUNTS = MapOf("table", "count")


def _cost_rules(spec: Any) -> Any:
    """Redaction's rules for the manifest's ``cost``, from the format's one definition
    (``bundle_format.COST_FIELDS``): its numbers kept, its words kept within their vocabulary."""
    if isinstance(spec, dict):
        return {k: _cost_rules(v) for k, v in spec.items()}
    if isinstance(spec, tuple):
        return MapOf(spec[1], "count")
    return "count"  # every leaf is a number
_STATUS_COUNTS = MapOf("task_status", "count")
#: the server's counts by status of a session or of the whole selection (exporter/counts.py)
_SERVER_COUNTS = {"tasks": MapOf("task_status", "count"), "results": MapOf("result_status", "count")}
_SCAN_COUNTS = {k: "count" for k in (
    "units", "pages", "reported_total", "replaced_across_pages", "late_duplicates_dropped",
    "rescans", "missing_vs_reported_total", "units_stopped_growing")}

#: What redaction does with every field of the manifest, at every depth (docs/bundle-format.md
#: describes them): a dict for an object with known fields, :class:`ListOf`, :class:`MapOf`,
#: or a value rule (see :func:`_manifest_value`). Its top level is the typed Manifest's fields
#: (tests/test_sharing_trust.py checks it against aksnap.bundle.Manifest). A field that is not
#: here stops redaction with its name: it is neither copied (it could hold anything) nor
#: dropped unseen.
MANIFEST_PLAN: dict[str, Any] = {
    "format": REGENERATED, "format_version": REGENERATED, "written_at": REGENERATED,
    "tables": REGENERATED, "redaction": REGENERATED,
    "snapshot": "snapshot",
    "exported_at": "timestamp", "export_finished_at": "timestamp", "latest_timestamp": "timestamp",
    "armonik_versions": {"core": "version", "api": "version"},
    "source": {"endpoint": "endpoint", "tls": "flag", "mutual_tls": "flag"},
    "selection": {"sessions": ListOf("id"), "all": "flag", "status": "session_status",
                  "created_after": "timestamp", "created_before": "timestamp"},
    "sessions": ListOf({"session_id": "id", "status": "session_status", "tasks": "count",
                        "non_final_tasks": "count", "results": "count",
                        "server_task_counts_at_end": _STATUS_COUNTS,
                        "server_counts": _SERVER_COUNTS}),
    "exporter": {"tool": "tool", "version": "version", "page_size": "page_size", "jobs": "count"},
    "consistency": {"tasks": _SCAN_COUNTS, "results": _SCAN_COUNTS, "retries": "count",
                    "resource_exhausted": "count", "server_task_counts_at_end": _STATUS_COUNTS,
                    "server_counts": _SERVER_COUNTS},
    "warnings": ListOf("message"),
    "update": {
        "parent": {"digest": "digest", "exported_at": "timestamp",
                   "export_finished_at": "timestamp", "latest_timestamp": "timestamp",
                   "snapshot": "snapshot", "rows": _TABLE_COUNTS, "generation": "count"},
        "generation": "count", "created_since": "timestamp", "refetched_by_id": _TABLE_COUNTS,
        "rows_fetched": _TABLE_COUNTS, "rows_kept": _TABLE_COUNTS,
        "deleted_results_refetched": ListOf("id"), "new_sessions": ListOf("id"),
        "dropped_sessions": ListOf("id"), "rescanned_sessions": ListOf("id"),
        "mostly_open_sessions": ListOf("id"), "deleted_sessions": ListOf("id"),
        "rescanned_because": MapOf("id", "count_phrase"), "changed_only": "flag"},
    # what the capture cost the control plane: numbers, and words of closed vocabularies
    # (ArmoniK's call names, gRPC's status names, the table names)
    "cost": _cost_rules(COST_FIELDS),
}
#: The closed vocabularies of the manifest's words (a value outside stops redaction).
_WORDS = {"snapshot": ("final", "live"), "session_status": SESSION_STATUSES,
          "task_status": TASK_STATUSES, "result_status": RESULT_STATUSES, "table": TABLES,
          "tool": ("aksnap",), "method": COST_METHODS, "grpc_status": GRPC_STATUS_NAMES}
_WORD_NAMES = {"snapshot": "final or live", "session_status": "a session status (RUNNING, ...)",
               "task_status": "a task status (COMPLETED, ERROR, ...)",
               "result_status": "a result status (COMPLETED, ABORTED, ...)",
               "table": f"a table name ({', '.join(TABLES)})", "tool": "aksnap",
               "method": "an ArmoniK call aksnap makes (ListTasksDetailed, ...)",
               "grpc_status": "a gRPC status name (UNAVAILABLE, ...)"}
#: A version kept as it is: a number, dotted, then at most two short suffixes (0.34.0,
#: 3.21.0-rc1, 0.34.0-simulated); anything else becomes a pseudonym.
_VERSION = re.compile(r"v?\d{1,6}(\.\d{1,6}){0,3}([-+.][0-9A-Za-z]{1,16}){0,2}")

#: why ``export --update`` rescanned a session (exporter/counts.py ``disagreement``): numbers,
#: table names, statuses and fixed words only; any other text stops redaction
_COUNT_PHRASE = re.compile(
    r"\d{1,19} (tasks|results|sessions|partitions) (rows|[A-Z_]{1,24}(/[A-Z_]{1,24}){0,7}), the "
    r"server (had \d{1,19} before the fetches|has \d{1,19} after them|counted \d{1,19} before "
    r"and \d{1,19} after)")

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_GUID_SQL = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(###[0-9]+)?$"


# -- the key ---------------------------------------------------------------------------------

def new_key(path: str | os.PathLike) -> Path:
    """Create a key file (64 random hex digits, readable by its owner only); refuses an
    existing file, so a typo never replaces the key earlier bundles were redacted with."""
    p = Path(path).expanduser()
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise BundleError(f"the key file {p} already exists; drop --new-key to use it") from None
    except OSError as e:
        raise BundleError(f"cannot create the key file {p} ({e.strerror})") from None
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return p


def load_key(path: str | os.PathLike) -> bytes:
    """The key's bytes (a trailing newline is not part of it)."""
    p = Path(path).expanduser()
    try:
        # without blocking: a named pipe is refused at once, never waited on
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise BundleError(f"the key file {p} is not a regular file; give a file")
            data = f.read(MAX_KEY_BYTES + 1)
    except FileNotFoundError:
        raise BundleError(f"no key file at {p}; create one with --new-key (it must stay with "
                          "you: the same key makes the same pseudonyms)") from None
    except IsADirectoryError:
        raise BundleError(f"the key file {p} is a directory; give a file") from None
    except OSError as e:
        raise BundleError(f"cannot read the key file {p} ({e.strerror})") from None
    if len(data) > MAX_KEY_BYTES:
        raise BundleError(f"the key file {p} is larger than {MAX_KEY_BYTES} bytes; a key is "
                          "a short secret (--new-key writes 64 hex digits)")
    key = data.rstrip(b"\r\n")
    if len(key) < MIN_KEY_BYTES:
        raise BundleError(f"the key in {p} is {len(key)} bytes; a key needs at least "
                          f"{MIN_KEY_BYTES} (--new-key writes a good one)")
    return key


def key_fingerprint(key: bytes) -> str:
    """A short, one-way name for the key: written into the redacted bundle so a reader knows
    which bundles share pseudonyms, without the key."""
    return "sha256:" + hashlib.sha256(b"aksnap-redaction-key\x00" + key).hexdigest()[:16]


create_key = new_key  # the command's --new-key flag shadows the name


# -- pseudonyms ------------------------------------------------------------------------------

class Pseudonyms:
    """The keyed pseudonym of each kind of value (see the module docstring)."""

    def __init__(self, key: bytes, keep_ids: bool = False):
        self._key = key
        self.keep_ids = keep_ids

    def _mac(self, kind: str, value: bytes) -> bytes:
        # hmac.digest: OpenSSL's one-shot HMAC, 3-4x faster than hmac.new(...).copy()
        return hmac.digest(self._key, kind.encode() + b"\x1f" + value, "sha256")

    def id(self, v: str) -> str:
        if not v or self.keep_ids:
            return v
        i = v.find("###")
        if i > 0 and v[i + 3:].isdigit():
            return self._id_base(v[:i]) + v[i:]  # the retry number is kept: chains group
        return self._id_base(v)

    def _id_base(self, v: str) -> str:
        d = hmac.digest(self._key, b"id\x1f" + v.encode("utf-8", "surrogatepass"), "sha256")
        h = d.hex()
        if len(v) == 36 and _GUID.fullmatch(v):
            return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[d[8] & 3]}{h[17:20]}-{h[20:32]}"
        return "id-" + h[:24]

    def text(self, kind: str, v: str) -> str:
        if not v:
            return v
        return PREFIX[kind] + self._mac(kind, v.encode("utf-8", "surrogatepass")).hex()[:16]

    def opaque(self, v: bytes) -> bytes:
        return self._mac("opaque", v)[:16] if v else v

    def function(self, kind: str) -> Callable[[str], str]:
        if kind == "id":
            return self.id
        return lambda v: self.text(kind, v)


# -- messages --------------------------------------------------------------------------------

_MSG = re.compile(r"""
  (?P<sentinel>\uE000(?P<sn>\d+)\uE001)
| (?P<url>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>]*)
| (?P<email>[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+)
| (?P<guid>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?:\#\#\#\d+)?)
| (?P<quoted>"[^"\n]{0,4096}"|`[^`\n]{0,4096}`|(?<!\w)'[^'\n]{0,4096}')
| (?P<winpath>\b[A-Za-z]:\\[^\s"'<>|]*|\\\\[^\s"'<>|]+)
| (?P<path>(?<![\w.])(?:~|\.{1,2})?/[^\s"'<>|,;)\]]+|\b[\w.\-]+(?:/[\w.\-]+)+/?)
| (?P<ip>\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b|\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{0,4}\b)
| (?P<token>\w[\w.\-:@\#+]*)
""", re.X)
_TOKEN_CHARS = re.compile(r"^\w[\w.\-:@#+]*$")
_DOTTED = re.compile(r"[\w\-]+(?:\.[\w\-]+)+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_HEX = re.compile(r"(?:0x)?[0-9a-fA-F]{16,}")
_DIGITS = re.compile(r"\d+(?:\.\d+)*")
#: Dotted names kept in messages: .NET's and ArmoniK's own namespaces (exception types).
KEPT_NAMESPACES = ("System.", "Microsoft.", "ArmoniK.Api.", "ArmoniK.Core.", "ArmoniK.Utils.",
                   "Grpc.", "Google.Protobuf.")
_PLACEHOLDER = {"url": "<url>", "email": "<email>", "quoted": "<str>", "winpath": "<path>",
                "path": "<path>", "ip": "<ip>"}


class MessageRedactor:
    """``classes`` mode: a message's shape, with what identifies replaced (module docstring).

    ``vocabulary`` maps strings the bundle redacts elsewhere to their pseudonyms (a word of a
    message equal to one is replaced by it); ``literals`` are such strings that are not one
    word (spaces, markup), searched literally."""

    def __init__(self, pseudo: Pseudonyms, vocabulary: dict[str, str] | None = None,
                 literals: list[tuple[str, str]] | None = None):
        self.pseudo = pseudo
        self.vocabulary = vocabulary or {}
        self.literals = sorted(literals or [], key=lambda kv: -len(kv[0]))[:LITERAL_CAP]

    def __call__(self, msg: str) -> str:
        if not msg:
            return msg
        subs: list[str] = []
        if "\ue000" in msg or "\ue001" in msg:
            msg = msg.replace("\ue000", "\ufffd").replace("\ue001", "\ufffd")
        for original, pseudonym in self.literals:
            if original in msg:
                msg = msg.replace(original, f"\ue000{len(subs)}\ue001")
                subs.append(pseudonym)
        return _MSG.sub(lambda m: self._one(m, subs), msg)

    def _one(self, m: re.Match, subs: list[str]) -> str:
        kind = m.lastgroup
        if kind == "sn":
            kind = "sentinel"
        text = m.group(0)
        if kind == "sentinel":
            return subs[int(m.group("sn"))]
        if kind == "guid":
            return self.pseudo.id(text) if not self.pseudo.keep_ids else text
        if kind == "token":
            return self._token(text)
        return _PLACEHOLDER[kind]

    def _token(self, tok: str) -> str:
        v = self.vocabulary.get(tok)
        if v is not None:
            return v
        core = tok.rstrip(".:-#+@")
        tail = tok[len(core):]
        v = self.vocabulary.get(core)
        if v is not None:
            return v + tail
        if ":" in core or "@" in core:  # host:port, user@host
            return "".join(p if p in (":", "@") else self._piece(p)
                           for p in re.split(r"([:@])", core)) + tail
        return self._piece(core) + tail

    def _piece(self, p: str) -> str:
        if not p:
            return p
        v = self.vocabulary.get(p)
        if v is not None:
            return v
        if _DOTTED.fullmatch(p) and not _NUMBER.fullmatch(p):
            if p.startswith(KEPT_NAMESPACES):
                return _DIGITS.sub("<n>", p)
            return "<host>"
        if _HEX.fullmatch(p):
            return "<hex>"
        if "###" in p:
            base, _, n = p.partition("###")
            v = self.vocabulary.get(base)
            if v is not None and n.isdigit():
                return f"{v}###{n}"
        return _DIGITS.sub("<n>", p)


# -- columns ---------------------------------------------------------------------------------

class _MapLog:
    """The pseudonym -> original pairs, for ``--map`` (deduplicated when written)."""

    def __init__(self) -> None:
        self.parts: list[pa.Table] = []

    def add(self, kind: str, pseudonyms: pa.Array, originals: pa.Array) -> None:
        keep = pc.not_equal(originals.cast(pa.string()) if originals.type == pa.string()
                            else pc.binary_length(originals), "" if originals.type == pa.string() else 0)
        keep = pc.fill_null(keep, False)
        if pa.types.is_binary(originals.type):
            originals = pa.array([v.hex() if v is not None else None
                                  for v in originals.filter(keep).to_pylist()], pa.string())
            pseudonyms = pa.array([v.hex() if v is not None else None
                                   for v in pseudonyms.filter(keep).to_pylist()], pa.string())
        else:
            originals, pseudonyms = originals.filter(keep), pseudonyms.filter(keep)
        if len(originals):
            self.parts.append(pa.table({"kind": pa.array([kind] * len(originals), pa.string()),
                                        "pseudonym": pseudonyms, "original": originals}))

    def table(self) -> pa.Table:
        if not self.parts:
            return pa.table({"kind": pa.array([], pa.string()), "pseudonym": pa.array([], pa.string()),
                             "original": pa.array([], pa.string())})
        t = pa.concat_tables(self.parts)
        t = t.group_by(["kind", "pseudonym", "original"], use_threads=False).aggregate([])
        return t.sort_by([("kind", "ascending"), ("pseudonym", "ascending")])


def _list_parts(arr: pa.Array) -> tuple[np.ndarray, int, int]:
    """A (possibly sliced) list or map array's offsets from 0, and its values' range."""
    o = arr.offsets.to_numpy()
    start, end = int(o[0]), int(o[-1])
    return (o - start).astype(np.int32), start, end


class TableRedactor:
    """Redacts one table's row groups (one instance per table and row group is cheap)."""

    def __init__(self, pseudo: Pseudonyms, messages: str, message_fn: MessageRedactor | None,
                 log: _MapLog | None = None):
        self.pseudo = pseudo
        self.messages = messages
        self.message_fn = message_fn
        self.log = log
        self._cache: dict[str, dict[str, str]] = {}  # per kind, per row group: shared by columns

    def strings(self, arr: pa.Array, kind: str) -> pa.Array:
        """Each distinct value's pseudonym once, then one take."""
        if kind == "id" and self.pseudo.keep_ids:
            return arr
        if kind == "message":
            if self.messages == "keep":
                return arr
        if len(arr) == 0 or arr.null_count == len(arr):
            return arr
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(pa.string())
        enc = pc.dictionary_encode(arr)
        dictionary = enc.dictionary
        if kind == "message":
            fn = (lambda v: DROPPED if v else v) if self.messages == "drop" else self.message_fn
        else:
            fn = self.pseudo.function(kind)
        cache = self._cache.setdefault(kind, {})
        out = []
        for v in dictionary.to_pylist():
            p = cache.get(v)
            if p is None:
                p = cache[v] = fn(v)
            out.append(p)
        mapped = pa.array(out, pa.string())
        if self.log is not None and kind != "message":
            self.log.add(kind, mapped, dictionary)
        return mapped.take(enc.indices)

    def binary(self, arr: pa.Array) -> pa.Array:
        if len(arr) == 0 or arr.null_count == len(arr):
            return arr
        enc = pc.dictionary_encode(arr)
        mapped = pa.array([self.pseudo.opaque(v) if v is not None else None
                           for v in enc.dictionary.to_pylist()], pa.binary())
        if self.log is not None:
            self.log.add("opaque", mapped, enc.dictionary)
        return mapped.take(enc.indices)

    def lists(self, arr: pa.Array, kind: str) -> pa.Array:
        offsets, start, end = _list_parts(arr)
        values = self.strings(arr.values.slice(start, end - start), kind)
        mask = arr.is_null() if arr.null_count else None
        return pa.ListArray.from_arrays(pa.array(offsets), values, type=arr.type, mask=mask)

    def maps(self, arr: pa.Array) -> pa.Array:
        offsets, start, end = _list_parts(arr)
        keys = self.strings(arr.keys.slice(start, end - start), "option_key")
        items = self.strings(arr.items.slice(start, end - start), "option_value")
        mask = arr.is_null() if arr.null_count else None
        return pa.MapArray.from_arrays(pa.array(offsets), keys, items, type=arr.type, mask=mask)

    def struct(self, arr: pa.Array, where: str) -> pa.Array:
        children = arr.flatten()
        fields = list(arr.type)
        out = []
        for f, c in zip(fields, children):
            rule = STRUCT_PLAN.get(f.name)
            if rule is None:
                raise BundleError(_no_rule(f"the field {where}.{f.name}"))
            out.append(self.column(c, rule, f"{where}.{f.name}"))
        mask = arr.is_null() if arr.null_count else None
        return pa.StructArray.from_arrays(out, fields=fields, mask=mask)

    def column(self, col: pa.Array | pa.ChunkedArray, what: str, where: str) -> pa.Array:
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        t = col.type
        if what == KEEP:
            if _carries_text(t):
                raise BundleError(f"{where} holds text ({t}) where the format has numbers, "
                                  "times or flags, which redaction keeps; it stopped and "
                                  "nothing was written (the file was edited or not written "
                                  "by aksnap)")
            return col
        if what == "status":
            return self.status(col, where)
        if what == "options":
            return self.maps(col)
        if what == "task_options":
            return self.struct(col, where)
        if what == "opaque":
            return self.binary(col)
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            return self.lists(col, what)
        return self.strings(col, what)

    def status(self, col: pa.Array, where: str) -> pa.Array:
        """A status column is kept: ArmoniK's words only, anything else stops redaction."""
        domain = STATUS_DOMAIN[where.split(".")[0]]
        values = pc.unique(col.cast(pa.string()) if pa.types.is_dictionary(col.type) else col)
        if not pa.types.is_string(values.type) or len(values.drop_null().filter(pc.invert(
                pc.is_in(values.drop_null(), value_set=pa.array(domain, pa.string()))))):
            raise BundleError(f"{where} holds a value that is not an ArmoniK status; "
                              "redaction keeps statuses as they are, so it stopped and nothing "
                              "was written (the file was edited or not written by aksnap)")
        return col

    def table(self, name: str, data: pa.Table) -> pa.Table:
        plan = PLAN[name]
        cols = []
        for c in data.column_names:
            rule = plan.get(c)
            if rule is None:
                raise BundleError(_no_rule(f"the column {name}.{c}"))
            cols.append(self.column(data.column(c), rule, f"{name}.{c}"))
        self._cache.clear()
        return pa.Table.from_arrays(cols, names=data.column_names)


def _no_rule(what: str) -> str:
    return (f"{what} has no redaction rule, so redaction stopped and nothing was written: "
            "aksnap copies only what it knows how to redact (it could hold anything); remove "
            "it, or redact with the aksnap release that wrote it")


def check_parquet_metadata(name: str, schema: pa.Schema) -> None:
    """Refuse key-value metadata the format does not write, and metadata on any field: the
    redacted file gets the format's own, but what has no rule stops redaction, by name."""
    for k in (schema.metadata or {}):
        if k not in KNOWN_PARQUET_METADATA:
            shown = k.decode("utf-8", "replace")[:60]
            raise BundleError(_no_rule(f"the key-value metadata entry {shown!r} of "
                                       f"{name}.parquet"))

    def fields(fs, prefix):
        for f in fs:
            if f.metadata:
                raise BundleError(_no_rule(f"the metadata of the field {prefix}{f.name}"))
            t = f.type
            sub = [t.field(i) for i in range(t.num_fields)] if t.num_fields else []
            fields(sub, f"{prefix}{f.name}.")

    fields(schema, f"{name}.")


# -- the message vocabulary -------------------------------------------------------------------

_VOCAB_COLUMNS: dict[str, list[tuple[str, str]]] = {  # kind -> (table, column); ids first
    "id": [("tasks", "task_id"), ("results", "result_id"), ("sessions", "session_id")],
    "host": [("tasks", "pod_hostname")], "pod": [("tasks", "owner_pod_id")],
    "partition": [("partitions", "partition_id"), ("tasks", "partition_id")],
    "application_name": [("tasks", "application_name")],
    "application_namespace": [("tasks", "application_namespace")],
    "application_service": [("tasks", "application_service")],
    "application_version": [("tasks", "application_version")],
    "engine_type": [("tasks", "engine_type")],
    "name": [("results", "name")],
    "option_key": [("tasks", "options.key")], "option_value": [("tasks", "options.value")],
}


def _distinct(bundle: OpenBundle, table: str, column: str) -> pa.Array:
    pf = pq.ParquetFile(bundle.file(table))
    top = column.split(".")[0]
    out: list[pa.Array] = []
    for i in range(pf.num_row_groups):
        col = pf.read_row_group(i, columns=[top]).column(top)
        if column.endswith(".key") or column.endswith(".value"):
            col = pa.chunked_array([c.keys if column.endswith(".key") else c.items
                                    for c in col.chunks], pa.string())
        col = col.cast(pa.string()) if pa.types.is_dictionary(col.type) else col
        out.append(pc.unique(col))
    if not out:
        return pa.array([], pa.string())
    return pc.unique(pa.chunked_array(out, pa.string()))


def message_vocabulary(bundle: OpenBundle, pseudo: Pseudonyms) -> MessageRedactor:
    """The strings this bundle redacts elsewhere, to find them inside its messages: distinct
    values of each kind (up to VOCABULARY_CAP; GUID ids need none: a pattern finds them)."""
    vocab: dict[str, str] = {}
    literals: list[tuple[str, str]] = []
    if not any(len(m) for c in ("status_message", "output_error")
               for m in _distinct(bundle, "tasks", c).to_pylist() if m):
        return MessageRedactor(pseudo)  # no message to search: no vocabulary to read
    for kind, cols in _VOCAB_COLUMNS.items():
        if kind == "id" and pseudo.keep_ids:
            continue
        for table, column in cols:
            values = _distinct(bundle, table, column)
            values = values.filter(pc.fill_null(pc.greater(pc.utf8_length(values), 0), False))
            if kind == "id":  # GUID-shaped ids are found by their pattern
                values = values.filter(pc.invert(pc.match_substring_regex(values, _GUID_SQL)))
            fn = pseudo.function(kind)
            for v in values.slice(0, VOCABULARY_CAP).to_pylist():
                if v in vocab:
                    continue
                p = fn(v)
                if _TOKEN_CHARS.match(v):
                    vocab[v] = p
                elif len(v) >= 4:
                    literals.append((v, p))
    return MessageRedactor(pseudo, vocab, literals)


# -- the manifest ----------------------------------------------------------------------------

def _manifest_leaves(node: Any = None, where: str = "") -> list[tuple[str, str]]:
    """(field, value rule) of every leaf of :data:`MANIFEST_PLAN`."""
    node = MANIFEST_PLAN if node is None else node
    if isinstance(node, dict):
        return [leaf for k, v in node.items()
                for leaf in _manifest_leaves(v, f"{where}.{k}" if where else k)]
    if isinstance(node, ListOf):
        return _manifest_leaves(node.item, where + "[]")
    if isinstance(node, MapOf):
        return _manifest_leaves(node.value, where + "{}")
    return [(where, node)]


def redaction_record(key: bytes, messages: str, keep_ids: bool) -> dict[str, Any]:
    """The manifest's ``redaction`` field: what was redacted, how, with which key."""
    def redacted(rule: str) -> bool:
        return rule not in (KEEP, "status") and not (keep_ids and rule == "id") \
            and not (messages == "keep" and rule == "message")

    cols = [f"{t}.{c}" for t in TABLES for c, k in PLAN[t].items() if redacted(k)]
    fields = [f for f, rule in _manifest_leaves()
              if rule in ("id", "endpoint", "message", "digest", "version") and redacted(rule)]
    return {
        "method": METHOD,
        "key_fingerprint": key_fingerprint(key),
        "messages": messages,
        "ids": "kept" if keep_ids else "pseudonyms",
        "columns": cols,
        "manifest": fields + ["fields aksnap does not know: refused"],
        "kept": list(KEPT),
        "redacted_at": utc_now_iso(),
    }


class _ManifestValues:
    """The value rules of :data:`MANIFEST_PLAN`'s leaves."""

    def __init__(self, pseudo: Pseudonyms, message_fn: MessageRedactor | None, messages: str):
        self.pseudo, self.message_fn, self.messages = pseudo, message_fn, messages

    def __call__(self, rule: str, v: Any, where: str) -> Any:
        if v is None:
            return None
        if rule in ("id", "endpoint", "message", "digest", "version", "timestamp"):
            if not isinstance(v, str):
                raise _wrong(where, "a string")
            if rule == "id":
                return self.pseudo.id(v)
            if rule == "endpoint":
                return self.pseudo.text("endpoint", v)
            if rule == "message":
                if self.messages == "keep":
                    return v
                if self.messages == "drop":
                    return DROPPED if v else v
                return (self.message_fn or MessageRedactor(self.pseudo))(v)
            if rule == "digest":
                if not re.fullmatch(r"[0-9a-f]{64}", v):
                    raise _wrong(where, "a SHA-256 digest (64 hex digits)")
                return self.pseudo._mac("digest", v.encode()).hex()
            if rule == "version":
                return v if _VERSION.fullmatch(v) else self.pseudo.text("release", v)
            try:
                if len(v) > 64:
                    raise ValueError(v)
                datetime.fromisoformat(v)
            except ValueError:
                raise _wrong(where, "an ISO-8601 time") from None
            return v
        if rule == "count":
            if type(v) not in (int, float):
                raise _wrong(where, "a number")
            return v
        if rule == "flag":
            if type(v) is not bool:
                raise _wrong(where, "true or false")
            return v
        if rule == "page_size":
            if v != "auto" and type(v) is not int:
                raise _wrong(where, "a page size (a number or \"auto\")")
            return v
        if rule == "count_phrase":
            if not isinstance(v, str) or not _COUNT_PHRASE.fullmatch(v):
                raise _wrong(where, "a phrase of counts written by aksnap")
            return v
        words = _WORDS.get(rule)
        if words is None:  # pragma: no cover - a plan naming a rule that does not exist
            raise BundleError(_no_rule(f"the manifest field {where}"))
        if v not in words:
            raise _wrong(where, _WORD_NAMES[rule])
        return v


def _wrong(where: str, expected: str) -> BundleError:
    return BundleError(f"the manifest field {where} is not {expected}; redaction keeps only "
                       f"{expected} there, so it stopped and nothing was written (the manifest "
                       "was edited, or written by another tool)")


def _walk(node: Any, value: Any, where: str, values: _ManifestValues) -> Any:
    """``value`` redacted by the plan ``node``; anything without a rule raises BundleError
    naming it (every byte of the output manifest comes from a rule)."""
    if value is None:
        return None
    if isinstance(node, dict):
        if not isinstance(value, dict):
            raise _wrong(where or "the manifest", "an object")
        out = {}
        for k, v in value.items():
            name = f"{where}.{k}" if where else str(k)
            rule = node.get(k)
            if rule is None:
                raise BundleError(_no_rule(f"the manifest field {name[:120]}"))
            if rule != REGENERATED:
                out[k] = _walk(rule, v, name, values)
        return out
    if isinstance(node, ListOf):
        if not isinstance(value, list):
            raise _wrong(where, "a list")
        return [_walk(node.item, v, f"{where}[{i}]", values) for i, v in enumerate(value)]
    if isinstance(node, MapOf):
        if not isinstance(value, dict):
            raise _wrong(where, "an object")
        if node.key == "id":  # keyed by ids: the keys are pseudonymised like any id
            return {values("id", k, f"{where} key"): _walk(node.value, v, f"{where}.<id>", values)
                    for k, v in value.items()}
        words = _WORDS[node.key]
        if any(k not in words for k in value):
            raise BundleError(f"the manifest field {where} has a key that is not "
                              f"{_WORD_NAMES[node.key]}; redaction keeps only those there, so "
                              "it stopped and nothing was written (the manifest was edited, or "
                              "written by another tool)")
        return {k: _walk(node.value, v, f"{where}.{k}", values) for k, v in value.items()}
    return values(node, value, where)


def redact_manifest(m: Manifest, pseudo: Pseudonyms, message_fn: MessageRedactor | None,
                    messages: str, record: dict[str, Any]) -> Manifest:
    """The manifest of the redacted bundle: every field, at every depth, through its rule of
    :data:`MANIFEST_PLAN` (identifying strings pseudonymised, warnings as --messages says,
    numbers, times and words of a vocabulary checked and kept); a field without a rule, or a
    value of the wrong shape, raises BundleError naming it. The redaction record is added."""
    red = _walk(MANIFEST_PLAN, m.to_dict(), "", _ManifestValues(pseudo, message_fn, messages))
    return Manifest(tables={}, redaction=record,
                    **{k: v for k, v in red.items() if v is not None and k in Manifest._OPTIONAL})


@dataclass
class Redaction:
    """What ``export(..., redaction=...)`` redacts with (``aksnap export --redact``)."""

    key: bytes
    messages: str = "classes"
    keep_ids: bool = False
    map_out: str | os.PathLike | None = None


# -- the whole bundle ------------------------------------------------------------------------

@dataclass
class RedactSummary:
    path: Path
    rows: dict[str, int]
    bytes: int
    seconds: float
    key_fingerprint: str
    messages: str
    ids: str
    map_path: Path | None = None
    map_rows: int = 0
    source: str = ""
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "source": self.source, "rows": self.rows,
                "bytes": self.bytes, "seconds": round(self.seconds, 3),
                "key_fingerprint": self.key_fingerprint, "messages": self.messages,
                "ids": self.ids, "map": str(self.map_path) if self.map_path else None,
                "map_rows": self.map_rows}


def _check_map_path(map_out: Path | None, out: Path, overwrite: bool) -> Path | None:
    if map_out is None:
        return None
    map_out = Path(os.path.abspath(map_out))
    if map_out == out or out in map_out.parents:
        raise BundleError(f"--map {map_out} is inside the redacted bundle; the map must never "
                          "travel with it: write it elsewhere")
    if os.path.lexists(map_out) and not overwrite:
        raise BundleError(f"{map_out} already exists; choose another --map (or --overwrite)")
    if os.path.isdir(map_out):
        raise BundleError(f"--map {map_out} is a directory; give a file name (.parquet)")
    if not map_out.parent.is_dir():
        raise BundleError(f"cannot write --map {map_out}: the directory {map_out.parent} "
                          "does not exist")
    # a symbolic link, a FIFO, a device, a path inside a bundle: as every --out
    check_output_file(map_out, overwrite=overwrite, option="--map")
    return map_out


def redact_bundle(src: str | os.PathLike, out: str | os.PathLike, *, key: bytes | None = None,
                  key_file: str | os.PathLike | None = None, messages: str = "classes",
                  keep_ids: bool = False, map_out: str | os.PathLike | None = None,
                  overwrite: bool = False, verify: bool = True) -> RedactSummary:
    """Write a redacted copy of the bundle (or packed file) ``src`` at ``out``, atomically
    (:class:`~aksnap.bundle_writer.BundleWriter`). ``key`` or ``key_file`` is the secret;
    ``messages`` one of :data:`MESSAGE_MODES`; ``keep_ids`` leaves session, task and result
    ids as they are; ``map_out`` writes the pseudonym -> original table (Parquet: kind,
    pseudonym, original) for the sender alone. Raises BundleError (one sentence)."""
    from aksnap.bundle_writer import BundleWriter

    started = time.perf_counter()
    if messages not in MESSAGE_MODES:
        raise BundleError(f"unknown --messages mode {messages!r}; use {', '.join(MESSAGE_MODES)}")
    if key is None:
        if key_file is None:
            raise BundleError("redaction needs a key: pass --key-file KEY (--new-key creates one)")
        key = load_key(key_file)
    elif len(key) < MIN_KEY_BYTES:
        raise BundleError(f"the key is {len(key)} bytes; a key needs at least {MIN_KEY_BYTES}")
    out = Path(os.path.abspath(out))
    map_path = _check_map_path(Path(map_out) if map_out is not None else None, out, overwrite)
    bundle = OpenBundle.open(src)
    try:
        if bundle.manifest.redaction:
            fp = bundle.manifest.redaction.get("key_fingerprint", "?")
            raise BundleError(f"{src} is already redacted (key {fp}); redact the original "
                              "bundle instead (pseudonyms of pseudonyms would match nothing)")
        if verify:
            problems = bundle.checksum_problems()
            if problems:
                raise BundleError(f"{src} failed its integrity check: {problems[0]}; "
                                  "redaction refuses a damaged bundle (`aksnap check` lists why)")
        pseudo = Pseudonyms(key, keep_ids)
        for name in TABLES:  # footers only: refused before anything is written
            check_parquet_metadata(name, pq.ParquetFile(bundle.file(name)).schema_arrow)
        message_fn = message_vocabulary(bundle, pseudo) if messages == "classes" else None
        log = _MapLog() if map_path is not None else None
        record = redaction_record(key, messages, keep_ids)
        manifest = redact_manifest(bundle.manifest, pseudo, message_fn, messages, record)
        with BundleWriter(out, overwrite=overwrite, row_group_size=256 * 1024) as w:
            for name in TABLES:
                pf = pq.ParquetFile(bundle.file(name))
                red = TableRedactor(pseudo, messages, message_fn, log)
                for i in range(pf.num_row_groups):
                    w.write(name, red.table(name, pf.read_row_group(i)))
            map_tmp = None
            if log is not None:
                map_tmp = map_path.with_name(f".{map_path.name}.partial-{os.getpid()}-"
                                             f"{secrets.token_hex(4)}")
                table = log.table()
                try:
                    # the map turns pseudonyms back into names: readable by its owner only,
                    # created exclusively (never through a link), on disk before it is named
                    fd = os.open(map_tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                                 | getattr(os, "O_NOFOLLOW", 0), 0o600)
                    with os.fdopen(fd, "wb") as f:
                        pq.write_table(table, f, compression="zstd")
                        f.flush()
                        os.fsync(f.fileno())
                except OSError as e:
                    map_tmp.unlink(missing_ok=True)
                    raise BundleError(f"cannot write --map {map_path} ({e.strerror or e})") from None
            try:
                path = w.commit(manifest)
            except BaseException:
                if map_tmp is not None:
                    map_tmp.unlink(missing_ok=True)
                raise
        map_rows = 0
        if map_tmp is not None:
            os.replace(map_tmp, map_path)
            map_rows = table.num_rows
        rows = dict(w.rows)
    finally:
        bundle.close()
    from aksnap.bundle import read_manifest

    m = read_manifest(path)
    return RedactSummary(path=path, rows=rows, bytes=sum(e.bytes for e in m.tables.values()),
                         seconds=time.perf_counter() - started,
                         key_fingerprint=record["key_fingerprint"], messages=messages,
                         ids=record["ids"], map_path=map_path, map_rows=map_rows, source=str(src))


# -- the command -----------------------------------------------------------------------------

def register(app) -> None:
    """``aksnap redact`` (registered by aksnap.cli)."""
    import typer

    from aksnap import paths
    from aksnap.output import output_option

    formats = ("table", "json", "yaml")

    def redact_command(
        bundle: Path = typer.Argument(..., help="Bundle directory or packed file (.aksnap).",
                                      show_default=False, metavar="BUNDLE|FILE",
                                      callback=paths.bundle_in),
        out: Path = typer.Option(..., "--out", help="Redacted bundle directory to create "
                                 "(refused if it exists, unless --overwrite).",
                                 show_default=False, metavar="DIR", callback=paths.dir_out),
        key_file: Path = typer.Option(..., "--key-file", help="The secret key file: the same "
                                      "key gives the same pseudonyms in every bundle. Keep it; "
                                      "never send it.", show_default=False, metavar="KEY",
                                      callback=paths.file_out),
        new_key: bool = typer.Option(False, "--new-key", help="Create KEY first (64 random "
                                     "hex digits, mode 0600); refused if it exists."),
        messages: str = typer.Option("classes", "--messages", metavar="classes|drop|keep",
                                     help="Error texts and status messages: classes keeps their "
                                     "shape with ids, names, numbers, paths, hosts and quoted "
                                     "strings replaced; drop removes them; keep keeps them."),
        keep_ids: bool = typer.Option(False, "--keep-ids", help="Leave session, task and result "
                                      "ids as they are (everything else is still redacted)."),
        map_out: Optional[Path] = typer.Option(None, "--map", help="Also write the pseudonym -> "
                                               "original table here (Parquet), for you alone.",
                                               show_default=False, metavar="FILE",
                                               callback=paths.file_out),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing bundle "
                                       "at --out (and file at --map)."),
        output: Optional[str] = output_option(formats),
    ) -> None:
        """Write a copy of a bundle whose identifying strings are keyed pseudonyms.

        Ids keep their shape (a GUID stays a GUID, retries keep ###n), so every analysis gives
        the original's answer with ids mapped; statuses, times, sizes and counts are kept. The
        manifest records the redaction and the key's fingerprint, never the key.
        docs/sharing.md says what is redacted.

        Example: aksnap redact ./run-42 --out ./run-42-redacted --key-file ~/.aksnap-key --new-key
        """
        from aksnap.errors import Interrupted
        from aksnap.output import render_kv, resolve_format, to_json, to_yaml

        try:
            fmt = resolve_format(output, formats)
            if new_key:
                new_key_path = create_key(key_file)
                typer.echo(f"aksnap: created the key {new_key_path}; keep it private, reuse it "
                           "for comparable pseudonyms", err=True)
            s = redact_bundle(bundle, out, key_file=key_file, messages=messages.lower(),
                              keep_ids=keep_ids, map_out=map_out, overwrite=overwrite)
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted; nothing was written to {out}") from None
        d = s.as_dict()
        if fmt == "json":
            typer.echo(to_json(d))
        elif fmt == "yaml":
            typer.echo(to_yaml(d))
        else:
            typer.echo(render_kv([("bundle", d["path"]), ("from", d["source"]),
                                  ("rows", " ".join(f"{k}={v}" for k, v in d["rows"].items())),
                                  ("key", d["key_fingerprint"]), ("messages", d["messages"]),
                                  ("ids", d["ids"]), ("map", d["map"] or "not written"),
                                  ("seconds", d["seconds"])]))

    app.command("redact")(redact_command)
