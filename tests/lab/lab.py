#!/usr/bin/env python3
"""The danemta lab: a signed DNS world on loopback, served by one NSD.

    lab.py up SPEC.json DIR   build, sign and serve the world; print lab.json
    lab.py down DIR           stop that world's NSD and remove DIR (idempotent)

The spec format is documented in tests/lab/README.md. Standard library only, plus
python3-cryptography (when present) to sign simple "shared_key" zones in-process.
"""

import base64
import hashlib
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

MARKER = ".danemta-lab"
TTL = 300
# The SOA serial of every zone: 1 at `up`, one more at each `update`.
SERIAL = [1]
ALGORITHM = "ECDSAP256SHA256"
DAY = 86400
# Unbound tolerates clock skew of up to a day on long-lived signatures
# (val-sig-skew-max), so faulty validity windows sit a month away from now.
GOOD_WINDOW = (-3600, 30 * DAY)
EXPIRED_WINDOW = (-60 * DAY, -30 * DAY)
FUTURE_WINDOW = (30 * DAY, 60 * DAY)
NSD_START_ATTEMPTS = 5
NSD_READY_TIMEOUT = 10.0
ZONE_KEYS = {"name", "signed", "ds", "served", "records", "faults", "tamper", "shared_key"}
# Concurrent ldns-keygen / ldns-signzone processes: worlds of a thousand zones
# (bench/) must not start a thousand processes at once.
MAX_JOBS = max(4, 2 * (os.cpu_count() or 1))
FAULTS = {"ds-mismatch", "expired", "not-yet-valid"}
# RFC 3597 TYPEnn spellings of the types the lab knows by name (tamper matching).
TYPE_NAMES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
              33: "SRV", 43: "DS", 46: "RRSIG", 48: "DNSKEY", 52: "TLSA", 53: "SMIMEA",
              99: "SPF", 257: "CAA"}
CLASSES = {"IN", "CH", "HS", "CS"}
NOT_SERVED = ".not-served"  # zone file name suffix that never exists

try:  # python3-cryptography: signs simple shared-key zones without a process each
    from cryptography.hazmat.primitives import hashes as _hashes
    from cryptography.hazmat.primitives.asymmetric import ec as _ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
except ImportError:  # pragma: no cover - then ldns-signzone signs every zone
    _ec = None


class LabError(Exception):
    pass


# ---------------------------------------------------------------- names


def normalize_zone_name(name):
    if not isinstance(name, str) or not name:
        raise LabError("zone name must be a non-empty string")
    if name == ".":
        return "."
    if name.endswith("."):
        name = name[:-1]
    labels = name.split(".")
    for label in labels:
        if not label or len(label) > 63 or not re.fullmatch(r"[A-Za-z0-9_-]+", label):
            raise LabError(f"invalid zone name {name!r}")
    return name.lower()


def fqdn(zone):
    """'.' -> '.', 'a.b' -> 'a.b.'"""
    return "." if zone == "." else zone + "."


def ancestors(zone):
    """Proper ancestors of a zone, nearest first, root last."""
    if zone == ".":
        return []
    labels = zone.split(".")
    return [".".join(labels[i:]) for i in range(1, len(labels))] + ["."]


def absolute(owner, zone):
    if owner == "@":
        return fqdn(zone)
    if owner.endswith("."):
        return owner.lower()
    return owner.lower() + "." + ("" if zone == "." else fqdn(zone))


def file_stem(zone):
    return "root" if zone == "." else zone


def canonical_type(t):
    t = t.upper()
    m = re.fullmatch(r"TYPE(\d+)", t)
    if m and int(m.group(1)) in TYPE_NAMES:
        return TYPE_NAMES[int(m.group(1))]
    return t


# ---------------------------------------------------------------- spec


class Zone:
    def __init__(self, name, signed=True, ds=None, served=True, records=(), faults=(),
                 tamper=(), implicit=False, shared_key=False):
        self.name = name
        self.signed = signed
        self.shared_key = shared_key
        self.ds = signed if ds is None else ds
        self.served = served
        self.records = list(records)  # list of (owner_abs, TYPE, rdata, generic)
        self.faults = set(faults)
        self.tamper = list(tamper)  # list of (owner_abs, TYPE)
        self.implicit = implicit
        self.parent = None
        self.children = []
        self.key = None  # key base path (KSK, signs everything)
        self.ttls = {}  # (owner_abs, TYPE) -> TTL written in the spec (default TTL)
        self.ds_lines = []  # DS records the parent publishes


def parse_record(line, zone):
    if not isinstance(line, str) or not line.strip():
        raise LabError(f"zone {zone!r}: record must be a non-empty string")
    tokens = line.split()
    if len(tokens) < 2:
        raise LabError(f"zone {zone!r}: record {line!r} needs OWNER TYPE RDATA")
    owner = tokens[0]
    i = 1
    # Optional TTL and class: the class must be IN; a TTL is kept (record_ttl), else 300.
    while i < len(tokens) and (tokens[i].isdigit() or tokens[i].upper() in CLASSES):
        i += 1
    if i >= len(tokens):
        raise LabError(f"zone {zone!r}: record {line!r} has no type")
    rtype = tokens[i].upper()
    if not re.fullmatch(r"[A-Z][A-Z0-9-]*", rtype):
        raise LabError(f"zone {zone!r}: record {line!r}: bad type {tokens[i]!r}")
    # Keep the RDATA text exactly as written (quoted strings, spacing).
    m = re.match(r"\s*(?:\S+\s+){%d}" % (i + 1), line)
    rdata = line[m.end():].strip() if m else ""
    if not rdata and rtype not in ("TXT",):
        raise LabError(f"zone {zone!r}: record {line!r} has no RDATA")
    generic = rdata.startswith("\\#")
    return (absolute(owner, zone), rtype, rdata, generic)


def record_ttl(line):
    """The TTL written between owner and type, or None."""
    tokens = line.split()
    for t in tokens[1:]:
        if t.isdigit():
            return int(t)
        if t.upper() not in CLASSES:
            return None
    return None


def load_spec(path):
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except OSError as e:
        raise LabError(f"cannot read spec {path}: {e.strerror}")
    except json.JSONDecodeError as e:
        raise LabError(f"spec {path} is not valid JSON: {e}")
    if not isinstance(spec, dict):
        raise LabError("spec must be a JSON object with a \"zones\" list")
    unknown = set(spec) - {"zones"}
    if unknown:
        raise LabError(f"spec: unknown key(s) {sorted(unknown)}")
    zones_in = spec.get("zones", [])
    if not isinstance(zones_in, list):
        raise LabError("spec: \"zones\" must be a list")

    zones = {}
    for z in zones_in:
        if not isinstance(z, dict):
            raise LabError("spec: every zone must be an object")
        unknown = set(z) - ZONE_KEYS
        if unknown:
            raise LabError(f"zone {z.get('name')!r}: unknown key(s) {sorted(unknown)}")
        if "name" not in z:
            raise LabError("spec: a zone has no \"name\"")
        name = normalize_zone_name(z["name"])
        if name in zones:
            raise LabError(f"zone {name!r} listed twice")
        for key in ("signed", "ds", "served", "shared_key"):
            if key in z and not isinstance(z[key], bool):
                raise LabError(f"zone {name!r}: \"{key}\" must be true or false")
        for key in ("records", "faults", "tamper"):
            if key in z and not (isinstance(z[key], list)
                                 and all(isinstance(x, str) for x in z[key])):
                raise LabError(f"zone {name!r}: \"{key}\" must be a list of strings")
        signed = z.get("signed", True)
        ds = z.get("ds", signed)
        if ds and not signed:
            raise LabError(f"zone {name!r}: \"ds\": true needs a signed zone")
        faults = z.get("faults", [])
        for fault in faults:
            if fault not in FAULTS:
                raise LabError(f"zone {name!r}: unknown fault {fault!r} "
                               f"(known: {', '.join(sorted(FAULTS))})")
        if faults and not signed:
            raise LabError(f"zone {name!r}: faults need a signed zone")
        if "ds-mismatch" in faults and not ds:
            raise LabError(f"zone {name!r}: \"ds-mismatch\" needs a DS (\"ds\" is false)")
        if "expired" in faults and "not-yet-valid" in faults:
            raise LabError(f"zone {name!r}: \"expired\" and \"not-yet-valid\" exclude each other")
        if name == "." and ("ds-mismatch" in faults or not ds or not signed
                            or not z.get("served", True)):
            raise LabError("the root zone is always signed and served and has no parent DS")
        records = [parse_record(r, name) for r in z.get("records", [])]
        tamper = []
        for t in z.get("tamper", []):
            parts = t.split()
            if len(parts) != 2:
                raise LabError(f"zone {name!r}: tamper entry {t!r} must be \"OWNER TYPE\"")
            tamper.append((absolute(parts[0], name), canonical_type(parts[1])))
        if tamper and not signed:
            raise LabError(f"zone {name!r}: tamper needs a signed zone")
        shared_key = z.get("shared_key", False)
        if shared_key and (not signed or name == "."):
            raise LabError(f"zone {name!r}: \"shared_key\" needs a signed zone other than the root")
        zones[name] = Zone(name, signed, ds, z.get("served", True), records, faults, tamper,
                           shared_key=shared_key)
        for line, (owner, rtype, _, _) in zip(z.get("records", []), records):
            ttl = record_ttl(line)
            if ttl is not None:
                zones[name].ttls[(owner, rtype)] = ttl

    if "." not in zones:
        zones["."] = Zone(".", implicit=True)
    for name in list(zones):
        if name == ".":
            continue
        tld = name.split(".")[-1]
        if tld not in zones:
            zones[tld] = Zone(tld, implicit=True)
    for name, zone in zones.items():
        if name == ".":
            continue
        parent = next(a for a in ancestors(name) if a in zones)
        zone.parent = zones[parent]
        zones[parent].children.append(zone)
    return zones


# ---------------------------------------------------------------- building


def with_context(message, base):
    """Appends the offending zone-file line to an ldns or NSD error message."""
    m = (re.search(r"at (\S+) line (\d+)", message)
         or re.search(r"(\S+\.zone(?:\.signed)?):(\d+):", message))
    if not m:
        return message
    try:
        with open(os.path.join(base, m.group(1)), encoding="utf-8", errors="replace") as f:
            line = f.readlines()[int(m.group(2)) - 1]
    except (OSError, IndexError, ValueError):
        return message
    return f"{message} [line {m.group(2)}: {' '.join(line.split())}]"


def run_all(commands, what):
    """Runs commands, at most MAX_JOBS at a time; returns their outputs in order and
    raises LabError naming the first failure."""
    results = [None] * len(commands)
    failure = None
    running = []  # (index, Popen)

    def reap(entry):
        nonlocal failure
        i, p = entry
        out, _ = p.communicate()
        results[i] = out
        if p.returncode != 0 and failure is None:
            cmd, cwd = commands[i]
            failure = with_context(f"{what} failed ({' '.join(cmd)}): {' '.join(out.split())}",
                                   cwd)

    for i, (cmd, cwd) in enumerate(commands):
        if len(running) >= MAX_JOBS:
            reap(running.pop(0))
        running.append((i, subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, text=True)))
    for entry in running:
        reap(entry)
    if failure:
        raise LabError(failure)
    return results


def name_wire(name):
    """The canonical (lower-case) wire form of a domain name, with or without the
    trailing dot (RFC 4034 6.2)."""
    name = name.rstrip(".")
    if not name:
        return b"\x00"
    return b"".join(bytes([len(l)]) + l.encode("ascii") for l in name.lower().split(".")) + b"\x00"


def read_dnskey(base):
    """(flags, protocol, algorithm, base64 key) of the DNSKEY in BASE.key."""
    with open(base + ".key", encoding="ascii") as f:
        for line in f:
            if "DNSKEY" in line and not line.startswith(";"):
                tokens = line.split(";")[0].split()
                i = tokens.index("DNSKEY")
                return (int(tokens[i + 1]), int(tokens[i + 2]), int(tokens[i + 3]),
                        "".join(tokens[i + 4:]))
    raise LabError(f"no DNSKEY in {base}.key")


def adopt_shared_key(shared, zone, keydir):
    """Copies the shared key pair to ZONE's name: the same private key, the DNSKEY
    with ZONE as owner, and the DS for it (RFC 4034 5.1.4, SHA-256) computed here."""
    flags, proto, alg, key64 = read_dnskey(shared)
    d = os.path.join(keydir, "key", file_stem(zone.name))
    os.makedirs(d, exist_ok=True)
    base = os.path.join(d, "K" + fqdn(zone.name) + "+shared")
    shutil.copyfile(shared + ".private", base + ".private")
    with open(base + ".key", "w", encoding="ascii") as f:
        f.write(f"{fqdn(zone.name)}\tIN\tDNSKEY\t{flags} {proto} {alg} {key64}\n")
    rdata = struct.pack(">HBB", flags, proto, alg) + base64.b64decode(key64)
    acc = sum(b << 8 if i % 2 == 0 else b for i, b in enumerate(rdata))  # RFC 4034 B
    tag = (acc + ((acc >> 16) & 0xFFFF)) & 0xFFFF
    digest = hashlib.sha256(name_wire(zone.name) + rdata).hexdigest()
    zone.key = base
    return [f"{fqdn(zone.name)}\tIN\tDS\t{tag} {alg} 2 {digest}"]


def generate_keys(zones, keydir):
    jobs = []
    shared = [z for z in zones.values() if z.signed and z.shared_key]
    if shared:
        jobs.append((shared[0], "shared"))
    for zone in zones.values():
        if zone.signed and not zone.shared_key:
            jobs.append((zone, "key"))
        if zone.signed and "ds-mismatch" in zone.faults:
            jobs.append((zone, "decoy"))
    commands = []
    for zone, kind in jobs:
        d = os.path.join(keydir, kind, file_stem(zone.name))
        os.makedirs(d, exist_ok=True)
        # One KSK per zone (flags 257) signs everything: a combined signing key.
        commands.append((["ldns-keygen", "-a", ALGORITHM, "-k", fqdn(zone.name)], d))
    outputs = run_all(commands, "ldns-keygen")
    shared_base = None
    for (zone, kind), (_, d), out in zip(jobs, commands, outputs):
        base = os.path.join(d, out.strip().splitlines()[-1].strip())
        if kind == "shared":
            shared_base = base
            continue
        with open(base + ".ds", encoding="ascii") as f:
            ds = [line.strip() for line in f if line.strip() and not line.startswith(";")]
        if kind == "key":
            zone.key = base
            if "ds-mismatch" not in zone.faults:
                zone.ds_lines = ds
        else:
            zone.ds_lines = ds  # the DS of a key the zone never uses: bogus
    for zone in shared:
        ds = adopt_shared_key(shared_base, zone, keydir)
        if "ds-mismatch" not in zone.faults:
            zone.ds_lines = ds


def rr(owner, rtype, rdata, ttl=TTL):
    return f"{owner}\t{ttl}\tIN\t{rtype}\t{rdata}"


def zone_text(zone):
    apex = fqdn(zone.name)
    ns = "ns." + ("" if zone.name == "." else apex)
    mbox = "hostmaster." + ("" if zone.name == "." else apex)
    lines = [f"$ORIGIN {apex}", f"$TTL {TTL}",
             rr(apex, "SOA", f"{ns} {mbox} {SERIAL[0]} 3600 600 86400 {TTL}"),
             rr(apex, "NS", ns), rr(ns, "A", "127.0.0.1")]
    for owner, rtype, rdata, _ in zone.records:
        lines.append(rr(owner, rtype, rdata, zone.ttls.get((owner, rtype), TTL)))
    for child in sorted(zone.children, key=lambda c: c.name):
        capex = fqdn(child.name)
        lines.append(rr(capex, "NS", "ns." + capex))
        lines.append(rr("ns." + capex, "A", "127.0.0.1"))
        if child.ds:
            for ds in child.ds_lines:
                lines.append(rr(capex, "DS", ds_rdata(ds)))
    return "\n".join(lines) + "\n"


def ds_rdata(line):
    # "example.\tIN\tDS\t37667 13 2 c9a7..." (TTL optional)
    tokens = line.split()
    i = tokens.index("DS")
    return " ".join(tokens[i + 1:])


def parse_rr_line(line):
    """(owner, TYPE, rdata) of one line of ldns-signzone output, or None."""
    if not line.strip() or line.startswith((";", "$")):
        return None
    parts = line.split(None, 4)
    if len(parts) < 4:
        return None
    rdata = parts[4].rstrip("\n") if len(parts) > 4 else ""
    return parts[0].lower(), parts[3].upper(), rdata


def restore_generic(lines, zone):
    """ldns-signzone prints RFC 3597 RDATA in the type's own syntax, which NSD may
    refuse when the RDATA is malformed on purpose; put back the spec's lines for
    every RRset that had a generic record (same RRset, so the RRSIG still holds)."""
    generic_sets = {(o, canonical_type(t)) for o, t, _, g in zone.records if g}
    if not generic_sets:
        return lines
    out = []
    emitted = set()
    for line in lines:
        p = parse_rr_line(line)
        if p and (p[0], canonical_type(p[1])) in generic_sets:
            key = (p[0], canonical_type(p[1]))
            if key not in emitted:
                emitted.add(key)
                for o, t, rd, _ in zone.records:
                    if (o, canonical_type(t)) == key:
                        out.append(rr(o, t, rd) + "\n")
            continue
        out.append(line)
    return out


def tamper_rdata(rtype, rdata, k):
    """The k-th (k >= 1) distinct alteration of one RDATA."""
    if rtype == "A":
        o = rdata.strip().split(".")
        o[3] = str((int(o[3]) + k) % 256)
        return ".".join(o)
    if rtype == "AAAA":
        a = int(ipaddress.IPv6Address(rdata.strip()))
        last = ((a & 0xFFFF) + k) % 0x10000
        return str(ipaddress.IPv6Address((a & ~0xFFFF) | last))
    if rtype == "MX":
        pref, target = rdata.split(None, 1)
        return f"{(int(pref) + k) % 65536} {target}"
    if rtype == "TXT":
        m = re.search(r'"([^"\\]?)', rdata)
        alphabet = "XYZWVUTSRQ"
        if m is None:
            return rdata + f' "{alphabet[k % len(alphabet)]}"'
        old = m.group(1)
        repl = [c for c in alphabet if c != old][(k - 1) % (len(alphabet) - 1)]
        return rdata[:m.start(1)] + repl + rdata[m.end(1):]
    if rtype in ("CNAME", "NS", "PTR"):
        target = rdata.strip()
        first, _, rest = target.partition(".")
        return f"t{k}{first}"[:63] + "." + rest
    # TLSA and anything else ending in a hex digit (DS, generic \# RDATA...).
    s = rdata.rstrip()
    if s and s[-1] in "0123456789abcdefABCDEF":
        return s[:-1] + format((int(s[-1], 16) + k) % 16, "x")
    raise LabError(f"tamper: do not know how to alter {rtype} RDATA {rdata!r}")


def apply_tamper(lines, zone):
    for owner, rtype in zone.tamper:
        idx = [i for i, line in enumerate(lines)
               if (p := parse_rr_line(line)) and p[0] == owner
               and canonical_type(p[1]) == rtype]
        if not idx:
            raise LabError(f"zone {zone.name!r}: tamper: no {rtype} record at {owner}")
        existing = {parse_rr_line(lines[i])[2].strip() for i in idx}
        first = parse_rr_line(lines[idx[0]])
        for k in range(1, 64):
            new = tamper_rdata(rtype, first[2], k)
            if new.strip() not in existing:
                break
        # Only one RR of the RRset changes: RRSIG kept, RRset now bogus.
        lines[idx[0]] = rr(first[0], first[1], new) + "\n"
    return lines


# ---------------------------------------------------------------- in-process signing
#
# ldns-signzone costs ~20 ms of CPU per zone, nearly all of it process start-up: a world
# of 1000 zones (bench/) spent 20 s there. Zones with "shared_key" whose records are
# all of the types below (no children, no tamper, no generic RDATA, no wildcard) are
# signed here instead, the way ldns-signzone -n does it: NSEC3 (SHA-1, no salt, 0
# iterations, no opt-out), one RRSIG per RRset by the zone's KSK.

TYPE_CODES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "AAAA": 28, "RRSIG": 46,
              "DNSKEY": 48, "NSEC3": 50, "NSEC3PARAM": 51, "TLSA": 52}
SIMPLE_TYPES = {"A", "AAAA", "NS", "CNAME", "MX", "TLSA"}


def rdata_name(token, zone):
    """An RDATA domain name as absolute, lower case ('@' and relative names per $ORIGIN)."""
    if token == "@":
        return fqdn(zone)
    return absolute(token, zone)


def rdata_wire(rtype, rdata, zone):
    t = rdata.split()
    if rtype == "A":
        return socket.inet_aton(t[0])
    if rtype == "AAAA":
        return ipaddress.IPv6Address(t[0]).packed
    if rtype in ("NS", "CNAME"):
        return name_wire(rdata_name(t[0], zone))
    if rtype == "MX":
        return struct.pack(">H", int(t[0])) + name_wire(rdata_name(t[1], zone))
    if rtype == "SOA":
        return (name_wire(rdata_name(t[0], zone)) + name_wire(rdata_name(t[1], zone))
                + struct.pack(">5I", *(int(x) for x in t[2:7])))
    if rtype == "TLSA":
        return bytes([int(t[0]), int(t[1]), int(t[2])]) + bytes.fromhex("".join(t[3:]))
    raise LabError(f"in-process signing: no encoder for {rtype}")


def type_bitmap(types):
    windows = {}
    for code in sorted(TYPE_CODES[t] for t in types):
        bits = windows.setdefault(code >> 8, bytearray(32))
        bits[(code & 0xFF) >> 3] |= 0x80 >> (code & 7)
    out = b""
    for window, bits in sorted(windows.items()):
        used = bytes(bits).rstrip(b"\x00")
        out += bytes([window, len(used)]) + used
    return out


def nsec3_hash(name):
    return hashlib.sha1(name_wire(name)).digest()  # 0 extra iterations, empty salt


def b32hex(digest):
    return base64.b32hexencode(digest).decode("ascii").lower().rstrip("=")


def rrsig_time(t):
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(t))


def signable_in_process(zone):
    return (_ec is not None and zone.signed and zone.shared_key and zone.served
            and not zone.children and not zone.tamper and not zone.ttls
            and all(not g and t in SIMPLE_TYPES and not o.startswith("*")
                    for o, t, _, g in zone.records))


def sign_in_process(zone, window, out_path):
    apex = fqdn(zone.name)
    flags, proto, alg, key64 = read_dnskey(zone.key)
    key_rdata = struct.pack(">HBB", flags, proto, alg) + base64.b64decode(key64)
    acc = sum(b << 8 if i % 2 == 0 else b for i, b in enumerate(key_rdata))
    tag = (acc + ((acc >> 16) & 0xFFFF)) & 0xFFFF
    with open(zone.key + ".private", encoding="ascii") as f:
        secret = next(line.split(":", 1)[1].strip() for line in f if line.startswith("PrivateKey:"))
    private = _ec.derive_private_key(int.from_bytes(base64.b64decode(secret), "big"),
                                     _ec.SECP256R1())

    # RRsets: owner -> TYPE -> [(wire rdata, presentation rdata)]
    ns = "ns." + apex
    rrsets = {}

    def add(owner, rtype, text, wire=None):
        wire = rdata_wire(rtype, text, zone.name) if wire is None else wire
        rrs = rrsets.setdefault(owner, {}).setdefault(rtype, [])
        if all(w != wire for w, _ in rrs):
            rrs.append((wire, text))

    add(apex, "SOA", f"{ns} hostmaster.{apex} 1 3600 600 86400 {TTL}")
    add(apex, "NS", ns)
    add(ns, "A", "127.0.0.1")
    for owner, rtype, rdata, _ in zone.records:
        add(owner, canonical_type(rtype), rdata)
    add(apex, "DNSKEY", f"{flags} {proto} {alg} {key64}", key_rdata)
    add(apex, "NSEC3PARAM", "1 0 0 -", bytes([1, 0, 0, 0, 0]))

    # NSEC3 chain over every owner name and the empty non-terminals above them.
    names = set(rrsets)
    for owner in list(names):
        labels = owner.split(".")[:-1]
        for i in range(1, len(labels)):
            parent = ".".join(labels[i:]) + "."
            if parent == apex or not parent.endswith("." + apex):
                break
            names.add(parent)
    chain = sorted((nsec3_hash(n), n) for n in names)
    for i, (digest, name) in enumerate(chain):
        types = set(rrsets.get(name, {}))
        if types:
            types.add("RRSIG")
        nxt = chain[(i + 1) % len(chain)][0]
        wire = (struct.pack(">BBHB", 1, 0, 0, 0) + bytes([len(nxt)]) + nxt + type_bitmap(types))
        text = f"1 0 0 - {b32hex(nxt).upper()} " + " ".join(sorted(types))
        rrsets.setdefault(f"{b32hex(digest)}.{apex}", {})["NSEC3"] = [(wire, text.strip())]

    now = int(time.time())
    inception, expiration = now + window[0], now + window[1]
    lines = [f"$ORIGIN {apex}\n"]
    for owner in sorted(rrsets):
        for rtype, rrs in sorted(rrsets[owner].items()):
            rrs.sort()  # canonical order: by wire RDATA (RFC 4034 6.3)
            labels = len(owner.rstrip(".").split("."))
            header = (struct.pack(">HBBIIIH", TYPE_CODES[rtype], alg, labels, TTL, expiration,
                                  inception, tag) + name_wire(apex))
            data = header + b"".join(
                name_wire(owner) + struct.pack(">HHIH", TYPE_CODES[rtype], 1, TTL, len(w)) + w
                for w, _ in rrs)
            r, s_ = decode_dss_signature(private.sign(data, _ec.ECDSA(_hashes.SHA256())))
            sig = base64.b64encode(r.to_bytes(32, "big") + s_.to_bytes(32, "big")).decode()
            for _, text in rrs:
                lines.append(rr(owner, rtype, text) + "\n")
            lines.append(rr(owner, "RRSIG", f"{rtype} {alg} {labels} {TTL} "
                            f"{rrsig_time(expiration)} {rrsig_time(inception)} {tag} {apex} "
                            f"{sig}") + "\n")
    with open(out_path, "w", encoding="utf-8") as f:
        f.writelines(lines)


def sign_zones(zones, zonedir):
    now = int(time.time())
    commands = []
    signed = []
    for zone in zones.values():
        if not zone.served:
            continue  # only its key (for the parent's DS) is needed
        path = os.path.join(zonedir, file_stem(zone.name) + ".zone")
        with open(path, "w", encoding="utf-8") as f:
            f.write(zone_text(zone))
        if not zone.signed:
            zone.served_file = path
            continue
        window = GOOD_WINDOW
        if "expired" in zone.faults:
            window = EXPIRED_WINDOW
        elif "not-yet-valid" in zone.faults:
            window = FUTURE_WINDOW
        out = path + ".signed"
        zone.served_file = out
        if signable_in_process(zone):
            sign_in_process(zone, window, out)
            continue
        commands.append((["ldns-signzone", "-n", "-t", "0", "-o", fqdn(zone.name),
                          "-i", str(now + window[0]), "-e", str(now + window[1]),
                          "-f", out, path, zone.key], zonedir))
        signed.append(zone)
    run_all(commands, "ldns-signzone")
    for zone in signed:
        if not (zone.tamper or any(g for *_, g in zone.records)):
            continue
        with open(zone.served_file, encoding="utf-8") as f:
            lines = f.readlines()
        lines = restore_generic(lines, zone)
        lines = apply_tamper(lines, zone)
        with open(zone.served_file, "w", encoding="utf-8") as f:
            f.write(f"$ORIGIN {fqdn(zone.name)}\n")
            f.writelines(lines)


def write_trust_anchor(root, path):
    with open(root.key + ".key", encoding="ascii") as f:
        for line in f:
            if "DNSKEY" in line and not line.startswith(";"):
                record = line.split(";")[0].split()
                i = record.index("DNSKEY")
                with open(path, "w", encoding="ascii") as out:
                    out.write(f". {TTL} IN DNSKEY {' '.join(record[i + 1:])}\n")
                return
    raise LabError("no DNSKEY in the root key file")


# ---------------------------------------------------------------- NSD


def nsd_conf(d, port, zones):
    lines = [
        "server:",
        f'  zonesdir: "{d}"',
        '  database: ""',
        '  username: ""',
        '  chroot: ""',
        f'  pidfile: "{d}/nsd.pid"',
        f'  logfile: "{d}/nsd.log"',
        f'  xfrdfile: "{d}/xfrd.state"',
        f'  zonelistfile: "{d}/zone.list"',
        f'  xfrdir: "{d}/xfr"',
        f"  ip-address: 127.0.0.1@{port}",
        "  do-ip6: no",
        "  server-count: 1",
        "  verbosity: 1",
        "  zonefiles-write: 0",
        "  reuseport: no",
        "remote-control:",
        "  control-enable: no",
    ]
    for zone in zones.values():
        if zone.served:
            rel = os.path.relpath(zone.served_file, d)
        else:
            # A configured zone without data makes NSD answer SERVFAIL for it: the
            # forwarder then reports SERVFAIL, as a recursive would for a lame zone.
            rel = os.path.join("zones", file_stem(zone.name) + NOT_SERVED)
        lines += ["zone:", f'  name: "{fqdn(zone.name)}"', f'  zonefile: "{rel}"']
    return "\n".join(lines) + "\n"


def free_port():
    """A port free on 127.0.0.1 for both UDP and TCP at the time of asking."""
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                t.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
            finally:
                t.close()
        finally:
            u.close()
    raise LabError("no free port on 127.0.0.1")


def soa_query_ok(port, timeout):
    qid = random.randrange(1 << 16)
    query = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + b"\x00" + struct.pack(">HH", 6, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(query, ("127.0.0.1", port))
        data, _ = s.recvfrom(4096)
        return len(data) >= 12 and struct.unpack(">H", data[:2])[0] == qid and data[2] & 0x80
    except OSError:
        return False
    finally:
        s.close()


def pid_is_our_nsd(pid, d):
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")
    except OSError:
        return False
    return os.path.join(d, "nsd.conf").encode() in cmdline


def stop_nsd(pid, d, proc=None):
    if pid is None or not pid_is_our_nsd(pid, d):
        if proc is not None:
            proc.poll()
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        if not pid_is_our_nsd(pid, d):
            break
        time.sleep(0.01)
    else:
        try:
            os.killpg(pid, signal.SIGKILL)  # NSD runs in its own session: pgid == pid
        except OSError:
            pass
        if proc is not None:
            proc.wait()
    # NSD's server and xfrd children leave with the parent; make sure.
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def zone_errors(d):
    try:
        with open(os.path.join(d, "nsd.log"), encoding="utf-8", errors="replace") as f:
            return [line.split("]: ", 1)[-1].strip() for line in f
                    if " error: " in line and NOT_SERVED not in line]
    except OSError:
        return []


def start_nsd(d, zones):
    last_error = ""
    for _ in range(NSD_START_ATTEMPTS):
        port = free_port()
        conf = os.path.join(d, "nsd.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write(nsd_conf(d, port, zones))
        for name in ("nsd.log", "nsd.out", "nsd.pid"):
            if os.path.exists(os.path.join(d, name)):
                os.remove(os.path.join(d, name))
        with open(os.path.join(d, "nsd.out"), "wb") as out:
            # Its own session: NSD outlives lab.py and never holds the caller's pipes.
            proc = subprocess.Popen(["nsd", "-d", "-c", conf], stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, cwd=d,
                                    start_new_session=True)
        try:
            deadline = time.monotonic() + NSD_READY_TIMEOUT
            while time.monotonic() < deadline and proc.poll() is None:
                if soa_query_ok(port, 0.05):
                    # Zones are loaded before NSD answers; a zone NSD refused is an error.
                    errors = zone_errors(d)
                    if errors:
                        raise LabError("nsd refused a zone: " + with_context(
                            " | ".join(errors), d)[:800])
                    return port, proc
        except BaseException:
            stop_nsd(proc.pid, d, proc)
            proc.wait()
            raise
        stop_nsd(proc.pid, d, proc)
        proc.wait()
        text = ""
        for name in ("nsd.log", "nsd.out"):
            try:
                with open(os.path.join(d, name), encoding="utf-8", errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        last_error = " | ".join(l.strip() for l in text.splitlines() if l.strip())[-600:]
        if not re.search(r"can't bind|address already in use", text, re.I):
            raise LabError("nsd failed to start: "
                           + (last_error or f"no answer on port {port} (exit {proc.returncode})"))
    raise LabError(f"nsd could not bind a port after {NSD_START_ATTEMPTS} attempts: {last_error}")


# ---------------------------------------------------------------- commands


def read_info(d):
    try:
        with open(os.path.join(d, "lab.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def running_pid(d):
    info = read_info(d)
    pids = []
    if info and isinstance(info.get("nsd_pid"), int):
        pids.append(info["nsd_pid"])
    try:
        with open(os.path.join(d, "nsd.pid"), encoding="ascii") as f:
            pids.append(int(f.read().strip()))
    except (OSError, ValueError):
        pass
    for pid in pids:
        if pid_is_our_nsd(pid, d):
            return pid
    return None


def up(spec_path, d):
    d = os.path.abspath(d)
    os.makedirs(d, exist_ok=True)
    if running_pid(d) is not None:
        raise LabError(f"{d} already has a running lab; run 'lab.py down {d}' first")
    if os.listdir(d) and not os.path.exists(os.path.join(d, MARKER)):
        # Tolerate only a spec placed there by the caller.
        others = [n for n in os.listdir(d) if os.path.join(d, n) != os.path.abspath(spec_path)]
        if others:
            raise LabError(f"{d} is not empty and is not a lab directory")
    open(os.path.join(d, MARKER), "w").close()
    zones = load_spec(spec_path)
    for sub in ("keys", "zones", "xfr"):
        shutil.rmtree(os.path.join(d, sub), ignore_errors=True)
        os.makedirs(os.path.join(d, sub))
    generate_keys(zones, os.path.join(d, "keys"))
    sign_zones(zones, os.path.join(d, "zones"))
    trust_anchor = os.path.join(d, "root.key")
    write_trust_anchor(zones["."], trust_anchor)
    port, proc = start_nsd(d, zones)
    try:
        info = {"port": port, "resolver": f"127.0.0.1@{port}",
                "trust_anchor_file": trust_anchor, "nsd_pid": proc.pid, "dir": d}
        tmp = os.path.join(d, "lab.json.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(info, f)
            f.write("\n")
        os.replace(tmp, os.path.join(d, "lab.json"))
        print(json.dumps(info), flush=True)
    except BaseException:
        stop_nsd(proc.pid, d, proc)
        raise


def soa_serial(port, zone, timeout):
    """The SOA serial NSD serves for `zone`, or None."""
    qid = random.randrange(1 << 16)
    qname = b"".join(bytes([len(label)]) + label.encode("ascii")
                     for label in fqdn(zone).rstrip(".").split(".") if label) + b"\x00"
    query = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + qname + struct.pack(">HH", 6, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(query, ("127.0.0.1", port))
        data, _ = s.recvfrom(65535)
    except OSError:
        return None
    finally:
        s.close()
    if len(data) < 12 or struct.unpack(">H", data[:2])[0] != qid:
        return None
    if struct.unpack(">H", data[6:8])[0] == 0:
        return None

    def skip_name(i):
        while i < len(data):
            n = data[i]
            if n == 0:
                return i + 1
            if n & 0xC0 == 0xC0:
                return i + 2
            i += n + 1
        return len(data)
    i = skip_name(12) + 4  # the question
    i = skip_name(i)
    rtype = struct.unpack(">H", data[i:i + 2])[0]
    if rtype != 6:
        return None
    i += 10  # type, class, TTL, RDLENGTH
    i = skip_name(skip_name(i))
    return struct.unpack(">I", data[i:i + 4])[0]


def update(spec_path, d):
    """Re-signs the running world `d` from a changed spec (same zones, same keys)
    and makes its NSD load the new zone files; returns once NSD serves them."""
    d = os.path.abspath(d)
    pid = running_pid(d)
    info = read_info(d)
    if pid is None or not info:
        raise LabError(f"{d} has no running lab")
    zones = load_spec(spec_path)
    keydir = os.path.join(d, "keys")
    for zone in zones.values():
        if zone.signed and (zone.shared_key or "ds-mismatch" in zone.faults):
            raise LabError(f"zone {zone.name!r}: update cannot re-sign shared_key or "
                           "ds-mismatch zones")
        if not zone.signed:
            continue
        kd = os.path.join(keydir, "key", file_stem(zone.name))
        try:
            bases = sorted(n[:-len(".private")] for n in os.listdir(kd) if n.endswith(".private"))
        except OSError:
            bases = []
        if not bases:
            raise LabError(f"zone {zone.name!r} was not in the world at 'up'")
        zone.key = os.path.join(kd, bases[0])
        with open(zone.key + ".ds", encoding="ascii") as f:
            zone.ds_lines = [line.strip() for line in f
                             if line.strip() and not line.startswith(";")]
    serial_file = os.path.join(d, "serial")
    try:
        with open(serial_file, encoding="ascii") as f:
            SERIAL[0] = int(f.read().strip()) + 1
    except (OSError, ValueError):
        SERIAL[0] = 2
    sign_zones(zones, os.path.join(d, "zones"))
    with open(serial_file, "w", encoding="ascii") as f:
        f.write(f"{SERIAL[0]}\n")
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + NSD_READY_TIMEOUT
    waiting = [z.name for z in zones.values() if z.served]
    while waiting and time.monotonic() < deadline:
        waiting = [z for z in waiting if soa_serial(info["port"], z, 0.1) != SERIAL[0]]
        if waiting:
            time.sleep(0.02)
    if waiting:
        raise LabError(f"nsd did not load the updated zones {waiting}: "
                       + " | ".join(zone_errors(d))[:600])


def down(d):
    d = os.path.abspath(d)
    if not os.path.isdir(d):
        return
    if not os.path.exists(os.path.join(d, MARKER)):
        raise LabError(f"{d} is not a lab directory (no {MARKER}); not removing it")
    pid = running_pid(d)
    if pid is not None:
        stop_nsd(pid, d)
    shutil.rmtree(d, ignore_errors=True)
    if os.path.exists(d):
        raise LabError(f"could not remove {d}")


def main(argv):
    usage = "usage: lab.py up SPEC.json DIR | lab.py update SPEC.json DIR | lab.py down DIR"
    try:
        if len(argv) == 3 and argv[0] == "up":
            up(argv[1], argv[2])
        elif len(argv) == 3 and argv[0] == "update":
            update(argv[1], argv[2])
        elif len(argv) == 2 and argv[0] == "down":
            down(argv[1])
        else:
            print(usage, file=sys.stderr)
            return 2
    except LabError as e:
        print(f"lab.py: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"lab.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
