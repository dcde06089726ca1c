"""An independent implementation of culla's analysts' questions, for cross-checking.

Issue #4's acceptance asks that every named query of culla returns, on an event set it
has never seen, exactly the counts (and rates to 1e-9) that an independent
implementation of the contract computes. This is that implementation. It was written
from the contract alone (/work/shared/EVENTS.md = docs/EVENTS.md: "Definitions every
report uses", "Attribution rules") and, where the contract is silent, from the choices
culla documents in docs/QUERIES.md and docs/DECISIONS.md; never from culla's SQL or
Rust. It uses plain Python (dicts and loops, no SQL, no DataFrame library) plus scipy
for the chi-square quantiles of the exact Poisson interval.

Two commands:

  produce   sends NDJSON lines (valid and malformed, as `culla simulate --bad-rate`
            writes them) to Kafka with the confluent-kafka client, not culla's: each
            line is one message on PREFIX-calls/-chats/-referrals by its type, keyed by
            `family`, in a shuffled order (so events arrive late and out of order), with
            exact re-sends of some lines (duplicates that must be dropped).
  compute   reads the same NDJSON files itself, validates each line against the
            contract, drops duplicate event ids, and answers every named question for
            a calendar year, writing {"meta": …, "queries": {name: [row, …]}} as JSON.

The rows of each query carry the columns issue #4 names (and the extra ones
docs/QUERIES.md lists), keyed by the first columns; tests/independent_metrics.rs
compares them with `culla query NAME --format json`.
"""

import argparse
import csv
import json
import math
import random
import re
import sys
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

ROME = ZoneInfo("Europe/Rome")
MILANO = "015146"
UNKNOWN = "unknown"

# ---------------------------------------------------------------------------------------
# The contract: types, payload fields, validation (EVENTS.md "Types", "Bad input";
# DECISIONS.md "Wire format and validation").
# ---------------------------------------------------------------------------------------

CATEGORIES = {"economic", "health", "education", "childcare", "socialisation", "documents",
              "housing", "work", "psychological", "violence", "other"}
NEED_OUTCOMES = {"informed", "referred", "booked", "no_resource", "waiting_list",
                 "not_eligible"}
CLOSING = {"resolved", "service_unavailable", "waiting_list", "not_eligible",
           "unreachable", "declined"}
STAGES = {"pregnancy", "0-12m", "12-36m"}


def _str(v):
    return isinstance(v, str) and 1 <= len(v) <= 256


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 86400


def _bool(v):
    return isinstance(v, bool)


def _enum(values):
    return lambda v: isinstance(v, str) and v in values


def _date(v):
    if not isinstance(v, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
        return False
    try:
        date.fromisoformat(v)
    except ValueError:
        return False
    return True


def _need_ids(v):
    return isinstance(v, list) and len(v) >= 1 and all(_str(x) for x in v)


def _territory(v):
    if not isinstance(v, dict):
        return False
    c, n, m = v.get("comune"), v.get("nil"), v.get("municipio")
    if c is not None and not (isinstance(c, str) and re.fullmatch(r"\d{6}", c)):
        return False
    for x, hi in ((n, 88), (m, 9)):
        if x is not None and not (isinstance(x, int) and not isinstance(x, bool)
                                  and 1 <= x <= hi):
            return False
    return True


def _language(v):
    return isinstance(v, str) and re.fullmatch(r"[a-z]{2}", v) is not None


# type -> {field: (check, required)}
PAYLOAD = {
    "call.received": {"ivr_path": (_str, True)},
    "call.answered": {"operator": (_str, True), "wait_s": (_num, True)},
    "call.abandoned": {"wait_s": (_num, True)},
    "call.ended": {"duration_s": (_num, True)},
    "chat.opened": {"channel": (_enum({"whatsapp", "webchat"}), True)},
    "chat.message": {"direction": (_enum({"in", "out"}), True)},
    "chat.closed": {},
    "family.profiled": {
        "territory": (_territory, False), "stage": (_enum(STAGES), False),
        "first_child": (_bool, False), "single_parent": (_bool, False),
        "family_network": (_bool, False), "language": (_language, False),
        "interpreter_needed": (_bool, False), "arrived_last_2y": (_bool, False),
        "has_pediatrician": (_bool, False),
    },
    "need.recorded": {"need_id": (_str, True), "category": (_enum(CATEGORIES), True),
                      "outcome": (_enum(NEED_OUTCOMES), True), "resource": (_str, False)},
    "referral.created": {"referral_id": (_str, True), "need_ids": (_need_ids, True),
                         "to": (_str, True), "urgency": (_enum({"normal", "urgent"}), True)},
    "referral.callback": {"referral_id": (_str, True), "reached": (_bool, True)},
    "appointment.booked": {"appointment_id": (_str, True), "referral_id": (_str, False),
                           "service": (_str, True), "for_date": (_date, True)},
    "appointment.attended": {"appointment_id": (_str, True)},
    "appointment.missed": {"appointment_id": (_str, True)},
    "referral.closed": {"referral_id": (_str, True), "outcome": (_enum(CLOSING), True)},
}
ENVELOPE = ("event_id", "type", "v", "at", "source", "contact_id", "family")

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{12}")
FAMILY_RE = re.compile(r"[0-9a-f]{16,64}")
SOURCE_RE = re.compile(r"[a-z0-9._-]{1,64}")
AT_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
                   r"([Zz]|[+-]\d{2}:\d{2})")
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# A run of digits and separators; a phone number when it holds 9-15 digits and is not
# glued to letters (DECISIONS.md).
PHONE_RUN_RE = re.compile(r"\+?[0-9][0-9 .()/\-]*")


def parse_at(s):
    """RFC 3339 with an offset -> aware datetime, or None."""
    if not isinstance(s, str):
        return None
    m = AT_RE.fullmatch(s)
    if not m:
        return None
    y, mo, d, h, mi, se, frac, off = m.groups()
    try:
        micro = int((frac[1:] + "000000")[:6]) if frac else 0
        if off in ("Z", "z"):
            tz = timezone.utc
        else:
            sign = 1 if off[0] == "+" else -1
            tz = timezone(sign * timedelta(hours=int(off[1:3]), minutes=int(off[4:6])))
        return datetime(int(y), int(mo), int(d), int(h), int(mi), int(se), micro, tzinfo=tz)
    except ValueError:
        return None


def looks_personal(s):
    if EMAIL_RE.search(s):
        return True
    for m in PHONE_RUN_RE.finditer(s):
        run = m.group(0).rstrip(" .()/-")
        digits = sum(ch.isdigit() for ch in run)
        if not 9 <= digits <= 15:
            continue
        # Glued to letters, directly or through a separator (n-20240305-0001): an id.
        i = m.start() - 1
        while i >= 0 and s[i] in "-./":
            i -= 1
        j = m.start() + len(run)
        while j < len(s) and s[j] in "-./":
            j += 1
        glued = (i >= 0 and s[i].isalpha()) or (j < len(s) and s[j].isalpha())
        if not glued:
            return True
    return False


def personal_anywhere(v):
    if isinstance(v, str):
        return looks_personal(v)
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return 9 <= len(str(abs(v))) <= 15
    if isinstance(v, dict):
        return any(personal_anywhere(x) for x in v.values())
    if isinstance(v, list):
        return any(personal_anywhere(x) for x in v)
    return False


def validate(raw, now):
    """(event dict, None) for a valid v1 event, or (None, reason)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not_utf8"
    try:
        obj = json.loads(text)
    except ValueError:
        return None, "not_json"
    if not isinstance(obj, dict):
        return None, "not_object"
    if isinstance(obj.get("payload"), dict):  # nested payloads are lifted
        lifted = dict(obj["payload"])
        lifted.update({k: v for k, v in obj.items() if k != "payload"})
        obj = lifted
    obj = {k: v for k, v in obj.items() if v is not None}  # null = absent
    for f in ENVELOPE:
        if f not in obj:
            return None, "missing_field"
    t = obj["type"]
    if not isinstance(t, str):
        return None, "wrong_type"
    if t not in PAYLOAD:
        return None, "unknown_type"
    v = obj["v"]
    if not isinstance(v, int) or isinstance(v, bool):
        return None, "wrong_type"
    if v != 1:
        return None, "bad_version"
    if not isinstance(obj["event_id"], str) or not UUID_RE.fullmatch(obj["event_id"]):
        return None, "bad_event_id"
    if not isinstance(obj["family"], str) or not FAMILY_RE.fullmatch(obj["family"]):
        return None, "bad_family"
    for f in ("source", "contact_id"):
        if not isinstance(obj[f], str):
            return None, "wrong_type"
    if not SOURCE_RE.fullmatch(obj["source"]) or not 1 <= len(obj["contact_id"]) <= 128:
        return None, "bad_value"
    if not isinstance(obj["at"], str):
        return None, "wrong_type"
    at = parse_at(obj["at"])
    if at is None:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?", obj["at"]):
            return None, "no_offset"
        return None, "bad_timestamp"
    if at.astimezone(ROME).date() < date(2015, 1, 1):
        return None, "too_old"
    if at > now + timedelta(hours=24):
        return None, "in_future"
    for f, (check, required) in PAYLOAD[t].items():
        if f not in obj:
            if required:
                return None, "missing_field"
            continue
        if not check(obj[f]):
            return None, "bad_value"
    rest = {k: v for k, v in obj.items() if k not in ("event_id", "at", "family")}
    if personal_anywhere(rest):
        return None, "personal_data"
    obj["event_id"] = obj["event_id"].lower()
    obj["_t"] = at.astimezone(timezone.utc)
    obj["_local"] = at.astimezone(ROME).replace(tzinfo=None)
    return obj, None


def read_lines(paths):
    for p in paths:
        data = Path(p).read_bytes()
        for line in data.split(b"\n"):
            line = line.rstrip(b"\r")
            if line.strip():
                yield line


def load_events(paths, now):
    """Valid events, first of each event id; counts of what was dropped."""
    seen = set()
    events, invalid, duplicates = [], {}, 0
    for raw in read_lines(paths):
        ev, reason = validate(raw, now)
        if ev is None:
            invalid[reason] = invalid.get(reason, 0) + 1
            continue
        if ev["event_id"] in seen:
            duplicates += 1
            continue
        seen.add(ev["event_id"])
        events.append(ev)
    return events, invalid, duplicates


# ---------------------------------------------------------------------------------------
# Reference data (schemas/reference/milano/): ds205 births per NIL and year, NIL names,
# the derived NIL -> Municipio table.
# ---------------------------------------------------------------------------------------


def load_reference(ref_dir):
    ref_dir = Path(ref_dir)
    births, names = {}, {}  # (year, nil) -> births; (year, nil) -> name
    with open(ref_dir / "ds205_nil_demographics_2011_2024.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter=";"):
            nil = row["NIL"].strip()
            if not nil.isdigit():
                continue  # the N.D. (unassigned) rows
            year, nil = int(row["Anno"]), int(nil)
            births[(year, nil)] = int(row["Nati vivi"])
            names[(year, nil)] = row["Quartiere"]
    municipio = {}
    with open(ref_dir / "nil_municipio.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["municipio"].strip():
                municipio[int(row["nil_id"])] = int(row["municipio"])
    return births, names, municipio


# ---------------------------------------------------------------------------------------
# Statistics.
# ---------------------------------------------------------------------------------------


def percentile(values, q):
    """Exact percentile with linear interpolation (numpy's default method)."""
    if not values:
        return None
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    frac = pos - lo
    return xs[lo] + (xs[hi] - xs[lo]) * frac


def poisson_ci(k):
    """95% exact (Garwood) interval for a Poisson count k."""
    from scipy.stats import chi2

    low = 0.0 if k == 0 else chi2.ppf(0.025, 2 * k) / 2
    high = chi2.ppf(0.975, 2 * k + 2) / 2
    return float(low), float(high)


def ratio(num, den):
    return num / den if den else None


# ---------------------------------------------------------------------------------------
# The metrics (EVENTS.md "Definitions every report uses", "Attribution rules").
# ---------------------------------------------------------------------------------------

FLAGS = ["single_parent", "no_family_network", "language_barrier", "arrived_last_2y",
         "first_child", "no_pediatrician", "psychological_need", "economic_need",
         "repeat_contacts"]
PROFILE_FIELDS = ["stage", "first_child", "single_parent", "family_network", "language",
                  "interpreter_needed", "arrived_last_2y", "has_pediatrician"]
UNMET_FIRST_LEVEL = {"no_resource", "waiting_list", "not_eligible"}
THIRTY_DAYS = timedelta(days=30)


def in_service_hours(local):
    """Monday-Saturday, 08:00 <= time < 18:00 (Europe/Rome)."""
    return local.isoweekday() <= 6 and time(8, 0) <= local.time() < time(18, 0)


def latest(items):
    """The item with the greatest `_t` (a re-recorded id keeps its latest version)."""
    return max(items, key=lambda e: e["_t"])


class Metrics:
    def __init__(self, events, year, as_of, target_hours, risk_threshold, reference):
        self.year = year
        self.period_start = datetime(year, 1, 1, tzinfo=ROME).astimezone(timezone.utc)
        self.period_end = datetime(year + 1, 1, 1, tzinfo=ROME).astimezone(timezone.utc)
        self.as_of = as_of if as_of is not None else max(e["_t"] for e in events)
        self.target = timedelta(hours=target_hours)
        self.target_hours = target_hours
        self.risk_threshold = risk_threshold
        self.births, self.names, self.nil_municipio = reference
        years = sorted({y for (y, _) in self.births})
        self.births_year = year if year in years else years[-1]
        # Events after the as-of instant are ignored (so reruns agree).
        self.events = [e for e in events if e["_t"] <= self.as_of]
        self.by_type = {}
        for e in self.events:
            self.by_type.setdefault(e["type"], []).append(e)
        self._contacts()
        self._calls()
        self._referrals()
        self._needs()
        self._profiles()

    def of(self, t):
        return self.by_type.get(t, [])

    def in_period(self, e):
        return self.period_start <= e["_t"] < self.period_end

    # --- contacts -------------------------------------------------------------------
    def _contacts(self):
        opening = {}
        for e in self.of("call.received") + self.of("chat.opened"):
            opening.setdefault(e["contact_id"], []).append(e)
        self.all_contacts = {}
        for cid, evs in opening.items():
            e = min(evs, key=lambda x: x["_t"])  # a contact starts at its first opening
            self.all_contacts[cid] = {
                "contact_id": cid, "source": e["source"], "family": e["family"],
                "channel": "phone" if e["type"] == "call.received" else e["channel"],
                "t": e["_t"], "local": e["_local"], "opening": e,
            }
        self.contacts = [c for c in self.all_contacts.values() if self.in_period(c["opening"])]
        self.history = {}  # family -> sorted contact times up to the period end
        for c in self.all_contacts.values():
            if c["t"] < self.period_end:
                self.history.setdefault(c["family"], []).append(c["t"])
        for ts in self.history.values():
            ts.sort()

    def _calls(self):
        self.answer = {}
        for e in self.of("call.answered"):
            cur = self.answer.get(e["contact_id"])
            if cur is None or e["_t"] < cur["_t"]:
                self.answer[e["contact_id"]] = e
        self.abandoned = {e["contact_id"] for e in self.of("call.abandoned")}

    # --- referrals ------------------------------------------------------------------
    def _referrals(self):
        created = {}
        for e in self.of("referral.created"):
            created.setdefault(e["referral_id"], []).append(e)
        self.referrals = {rid: latest(evs) for rid, evs in created.items()}
        self.first_reached = {}
        for e in self.of("referral.callback"):
            if e["reached"]:
                cur = self.first_reached.get(e["referral_id"])
                if cur is None or e["_t"] < cur:
                    self.first_reached[e["referral_id"]] = e["_t"]
        closed = {}
        for e in self.of("referral.closed"):
            closed.setdefault(e["referral_id"], []).append(e)
        self.closing = {rid: latest(evs)["outcome"] for rid, evs in closed.items()}
        booked = {}
        for e in self.of("appointment.booked"):
            booked.setdefault(e["appointment_id"], []).append(e)
        booked = {aid: latest(evs) for aid, evs in booked.items()}
        attendance = {}
        for e in self.of("appointment.attended") + self.of("appointment.missed"):
            attendance.setdefault(e["appointment_id"], []).append(e)
        self.appointment_state = {aid: latest(evs)["type"] for aid, evs in attendance.items()}
        # A referral's appointment booked last decides `missed_appointment`.
        self.last_appointment = {}
        for aid, e in booked.items():
            rid = e.get("referral_id")
            if rid is None:
                continue
            cur = self.last_appointment.get(rid)
            if cur is None or e["_t"] > cur[1]:
                self.last_appointment[rid] = (aid, e["_t"])
        self.escalated_contacts = {e["contact_id"] for e in self.referrals.values()}
        # need id -> the latest referral listing it
        self.referral_of_need = {}
        for rid, e in self.referrals.items():
            for nid in e["need_ids"]:
                cur = self.referral_of_need.get(nid)
                if cur is None or e["_t"] > self.referrals[cur]["_t"]:
                    self.referral_of_need[nid] = rid

    def hours_to_callback(self, rid):
        reached = self.first_reached.get(rid)
        if reached is None:
            return None
        return (reached - self.referrals[rid]["_t"]).total_seconds() / 3600

    # --- needs ----------------------------------------------------------------------
    def _needs(self):
        recorded = {}
        for e in self.of("need.recorded"):
            recorded.setdefault(e["need_id"], []).append(e)
        self.all_needs = {nid: latest(evs) for nid, evs in recorded.items()}
        self.needs = []
        for nid, e in self.all_needs.items():
            if not self.in_period(e):
                continue
            status, reason = self.need_status(nid, e)
            self.needs.append({"need_id": nid, "category": e["category"], "family": e["family"],
                               "status": status, "reason": reason})

    def need_status(self, nid, e):
        """(met | unmet | declined | open, reason) by EVENTS.md's precedence."""
        if e["outcome"] in UNMET_FIRST_LEVEL:
            return "unmet", e["outcome"]
        rid = self.referral_of_need.get(nid)
        if rid is None:
            return "met", None
        closing = self.closing.get(rid)
        if closing == "resolved":
            return "met", None
        if closing == "declined":
            return "declined", None
        if closing is not None:
            return "unmet", closing
        created = self.referrals[rid]["_t"]
        if rid not in self.first_reached and self.as_of - created > self.target:
            return "unmet", "no_callback"
        last = self.last_appointment.get(rid)
        if last is not None and self.appointment_state.get(last[0]) == "appointment.missed":
            return "unmet", "missed_appointment"
        return "open", None

    # --- families -------------------------------------------------------------------
    def _profiles(self):
        """Each family's profile merged from its family.profiled up to the period end."""
        profiles = sorted((e for e in self.of("family.profiled") if e["_t"] < self.period_end),
                          key=lambda e: e["_t"])
        self.profile = {}
        for e in profiles:
            p = self.profile.setdefault(e["family"], {})
            for f in PROFILE_FIELDS:
                if f in e:
                    p[f] = e[f]
            if "territory" in e:
                p["territory"] = e["territory"]  # replaced as a whole
        self.need_categories = {}
        for e in self.all_needs.values():
            if e["_t"] < self.period_end:
                self.need_categories.setdefault(e["family"], set()).add(e["category"])

    def territory(self, family):
        """(comune, nil, municipio) as text keys, 'unknown' where missing."""
        t = self.profile.get(family, {}).get("territory")
        if t is None:
            return UNKNOWN, UNKNOWN, UNKNOWN
        comune = t.get("comune", UNKNOWN)
        nil = t.get("nil")
        mun = t.get("municipio")
        if mun is None and nil is not None and comune == MILANO:
            mun = self.nil_municipio.get(nil)
        return (comune, UNKNOWN if nil is None else str(nil),
                UNKNOWN if mun is None else str(mun))

    def stage(self, family):
        return self.profile.get(family, {}).get("stage", UNKNOWN)

    def flags(self, family):
        p = self.profile.get(family, {})
        cats = self.need_categories.get(family, set())
        ts = self.history.get(family, [])
        repeat = any(ts[i + 2] - ts[i] <= THIRTY_DAYS for i in range(len(ts) - 2))
        lang = p.get("language")
        return {
            "single_parent": p.get("single_parent") is True,
            "no_family_network": p.get("family_network") is False,
            "language_barrier": p.get("interpreter_needed") is True
            or (lang is not None and lang != "it"),
            "arrived_last_2y": p.get("arrived_last_2y") is True,
            "first_child": p.get("first_child") is True,
            "no_pediatrician": p.get("has_pediatrician") is False,
            "psychological_need": "psychological" in cats,
            "economic_need": "economic" in cats,
            "repeat_contacts": repeat,
        }

    def families_in_contact(self):
        return sorted({c["family"] for c in self.contacts})

    # --- births -----------------------------------------------------------------------
    def nil_births(self, comune, nil):
        if comune != MILANO or not nil.isdigit():
            return None
        return self.births.get((self.births_year, int(nil)))

    def municipio_births(self, comune, mun):
        if comune != MILANO or not mun.isdigit():
            return None
        nils = [n for n, m in self.nil_municipio.items() if m == int(mun)]
        vals = [self.births[(self.births_year, n)] for n in nils
                if (self.births_year, n) in self.births]
        return sum(vals) if vals else None

    def per_1000(self, count, births):
        if not births:
            return None, None, None
        low, high = poisson_ci(count)
        return count * 1000 / births, low * 1000 / births, high * 1000 / births

    # =================================================================================
    # The named questions.
    # =================================================================================
    def contacts_by_month(self):
        rows = {}
        for c in self.contacts:
            k = (c["local"].strftime("%Y-%m"), c["source"], c["channel"])
            r = rows.setdefault(k, {"contacts": 0, "families": set(), "out_of_hours": 0})
            r["contacts"] += 1
            r["families"].add(c["family"])
            r["out_of_hours"] += 0 if in_service_hours(c["local"]) else 1
        return [{"month": k[0], "source": k[1], "channel": k[2], "contacts": r["contacts"],
                 "families": len(r["families"]), "out_of_hours": r["out_of_hours"],
                 "out_of_hours_share": ratio(r["out_of_hours"], r["contacts"])}
                for k, r in sorted(rows.items())]

    def service_levels_by_month(self):
        rows = {}
        for c in self.contacts:
            if c["channel"] != "phone":
                continue
            k = (c["local"].strftime("%Y-%m"), c["source"])
            r = rows.setdefault(k, {"calls": 0, "answered": 0, "abandoned": 0, "within": 0,
                                    "waits": []})
            r["calls"] += 1
            ans = self.answer.get(c["contact_id"])
            if ans is not None:
                r["answered"] += 1
                r["waits"].append(float(ans["wait_s"]))
                r["within"] += 1 if ans["wait_s"] <= 30 else 0
            elif c["contact_id"] in self.abandoned:
                r["abandoned"] += 1
        out = []
        for k, r in sorted(rows.items()):
            out.append({
                "month": k[0], "source": k[1], "calls": r["calls"], "answered": r["answered"],
                "abandoned": r["abandoned"], "answered_within_30s": r["within"],
                "answer_rate": ratio(r["answered"], r["calls"]),
                "abandonment_rate": ratio(r["abandoned"], r["calls"]),
                "wait_p50_s": percentile(r["waits"], 0.5),
                "wait_p90_s": percentile(r["waits"], 0.9),
                "service_level": ratio(r["within"], r["calls"]),
                "service_level_target": 0.85,
            })
        return out

    def escalations_by_month(self):
        rows = {}

        def row(k):
            return rows.setdefault(k, {"contacts": 0, "escalated": 0, "referrals": 0,
                                       "reached": 0, "within": 0, "hours": []})

        for c in self.contacts:
            r = row((c["local"].strftime("%Y-%m"), c["source"]))
            r["contacts"] += 1
            r["escalated"] += 1 if c["contact_id"] in self.escalated_contacts else 0
        for rid, e in self.referrals.items():
            if not self.in_period(e):
                continue
            r = row((e["_local"].strftime("%Y-%m"), e["source"]))
            r["referrals"] += 1
            h = self.hours_to_callback(rid)
            if h is not None:
                r["reached"] += 1
                r["hours"].append(h)
                r["within"] += 1 if h <= self.target_hours else 0
        out = []
        for k, r in sorted(rows.items()):
            out.append({
                "month": k[0], "source": k[1], "contacts": r["contacts"],
                "escalated": r["escalated"],
                "escalation_rate": ratio(r["escalated"], r["contacts"]),
                "first_level_resolution": ratio(r["contacts"] - r["escalated"], r["contacts"]),
                "first_level_resolution_target": 0.98,
                "referrals": r["referrals"], "referrals_reached": r["reached"],
                "callback_p50_h": percentile(r["hours"], 0.5),
                "callback_p90_h": percentile(r["hours"], 0.9),
                "callback_within_target": r["within"],
                "callback_within_target_share": ratio(r["within"], r["referrals"]),
                "callback_within_target_goal": 0.95,
                "callback_target_hours": float(self.target_hours),
            })
        return out

    def contacts_by_weekday_hour(self):
        cells = {(d, h): 0 for d in range(1, 8) for h in range(24)}
        for c in self.contacts:
            cells[(c["local"].isoweekday(), c["local"].hour)] += 1
        return [{"weekday": d, "hour": h, "contacts": n} for (d, h), n in sorted(cells.items())]

    def needs_by_category(self):
        rows = {}
        for n in self.needs:
            k = (n["category"], self.stage(n["family"]))
            r = rows.setdefault(k, {"needs": 0, "met": 0, "unmet": 0, "declined": 0,
                                    "open": 0})
            r["needs"] += 1
            r[n["status"]] += 1
        return [{"category": k[0], "stage": k[1], **r,
                 "unmet_share": ratio(r["unmet"], r["needs"])}
                for k, r in sorted(rows.items())]

    def unmet_needs_by_reason(self):
        rows = {}
        for n in self.needs:
            if n["status"] == "unmet":
                k = (n["category"], n["reason"])
                rows[k] = rows.get(k, 0) + 1
        return [{"category": k[0], "reason": k[1], "needs": v} for k, v in sorted(rows.items())]

    def _unmet_by(self, level):
        rows = {}
        for n in self.needs:
            comune, nil, mun = self.territory(n["family"])
            k = (comune, nil if level == "nil" else mun)
            r = rows.setdefault(k, {"needs": 0, "unmet": 0})
            r["needs"] += 1
            r["unmet"] += 1 if n["status"] == "unmet" else 0
        out = []
        for (comune, key), r in sorted(rows.items()):
            row = {"comune": comune}
            if level == "nil":
                births = self.nil_births(comune, key)
                row.update(nil=key, nil_name=self.nil_name(comune, key),
                           municipio=self.nil_municipio_of(comune, key))
            else:
                births = self.municipio_births(comune, key)
                row.update(municipio=key)
            rate, low, high = self.per_1000(r["unmet"], births)
            row.update(needs=r["needs"], unmet=r["unmet"],
                       unmet_share=ratio(r["unmet"], r["needs"]), births=births,
                       unmet_per_1000_births=rate, ci_low=low, ci_high=high,
                       births_year=self.births_year)
            out.append(row)
        return out

    def nil_name(self, comune, nil):
        if comune != MILANO or not nil.isdigit():
            return None
        return self.names.get((self.births_year, int(nil)))

    def nil_municipio_of(self, comune, nil):
        """A NIL row's Municipio (a number, not a key) from the reference table."""
        if comune != MILANO or not nil.isdigit():
            return None
        return self.nil_municipio.get(int(nil))

    def unmet_needs_by_nil(self):
        return self._unmet_by("nil")

    def unmet_needs_by_municipio(self):
        return self._unmet_by("municipio")

    def isolation_risk_flags(self):
        fams = self.families_in_contact()
        counts = {f: 0 for f in FLAGS}
        for fam in fams:
            for f, on in self.flags(fam).items():
                counts[f] += 1 if on else 0
        return [{"flag": f, "families": counts[f], "of_families": len(fams),
                 "share": ratio(counts[f], len(fams))} for f in sorted(FLAGS)]

    def _risk_by(self, level):
        rows = {}
        for fam in self.families_in_contact():
            comune, nil, mun = self.territory(fam)
            k = (comune, nil if level == "nil" else mun)
            r = rows.setdefault(k, {"families": 0, "high_risk": 0})
            r["families"] += 1
            score = sum(self.flags(fam).values())
            r["high_risk"] += 1 if score >= self.risk_threshold else 0
        out = []
        for (comune, key), r in sorted(rows.items()):
            row = {"comune": comune}
            if level == "nil":
                births = self.nil_births(comune, key)
                row.update(nil=key, nil_name=self.nil_name(comune, key),
                           municipio=self.nil_municipio_of(comune, key))
            else:
                births = self.municipio_births(comune, key)
                row.update(municipio=key)
            rate, low, high = self.per_1000(r["high_risk"], births)
            row.update(families=r["families"], high_risk=r["high_risk"],
                       high_risk_share=ratio(r["high_risk"], r["families"]), births=births,
                       families_per_1000_births=(r["families"] * 1000 / births
                                                 if births else None),
                       high_risk_per_1000_births=rate, ci_low=low, ci_high=high,
                       births_year=self.births_year)
            out.append(row)
        return out

    def isolation_risk_by_nil(self):
        return self._risk_by("nil")

    def isolation_risk_by_municipio(self):
        return self._risk_by("municipio")


QUERIES = ["contacts_by_month", "service_levels_by_month", "escalations_by_month",
           "contacts_by_weekday_hour", "needs_by_category", "unmet_needs_by_reason",
           "unmet_needs_by_nil", "unmet_needs_by_municipio", "isolation_risk_flags",
           "isolation_risk_by_nil", "isolation_risk_by_municipio"]


def compute(args):
    now = datetime.now(timezone.utc)
    events, invalid, duplicates = load_events(args.events, now)
    if not events:
        sys.exit("no valid events")
    as_of = parse_at(args.as_of) if args.as_of else None
    m = Metrics(events, args.year, as_of, args.callback_target_hours, args.risk_threshold,
                load_reference(args.reference))
    out = {
        "meta": {
            "valid_events": len(events), "duplicates": duplicates, "invalid": invalid,
            "as_of": m.as_of.isoformat(), "year": args.year, "births_year": m.births_year,
            "contacts": len(m.contacts), "needs": len(m.needs),
            "families": len(m.families_in_contact()),
        },
        "queries": {q: getattr(m, q)() for q in QUERIES},
    }
    text = json.dumps(out, indent=1, sort_keys=False)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)


# ---------------------------------------------------------------------------------------
# produce: the same lines to Kafka with confluent-kafka.
# ---------------------------------------------------------------------------------------


def topic_of_line(raw):
    """(calls | chats | referrals by the line's type, key = its hex family or empty).

    Malformed lines that are not a JSON object go to `calls`, unkeyed."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except ValueError:
        return "calls", b""
    if not isinstance(obj, dict):
        return "calls", b""
    t, family = obj.get("type"), obj.get("family")
    key = family.encode() if isinstance(family, str) and FAMILY_RE.fullmatch(family) else b""
    if isinstance(t, str) and t.startswith("chat."):
        return "chats", key
    if isinstance(t, str) and t.startswith("call."):
        return "calls", key
    return "referrals", key


def produce(args):
    try:
        from confluent_kafka import KafkaException, Producer
        from confluent_kafka.admin import AdminClient, NewTopic
    except ImportError:
        sys.exit("produce needs the confluent-kafka module (pip install confluent-kafka)")
    rng = random.Random(args.seed)
    lines = list(read_lines(args.events))
    messages = [(topic_of_line(raw), raw) for raw in lines]
    for i in rng.sample(range(len(messages)), min(args.dups, len(messages))):
        messages.append(messages[i])
    rng.shuffle(messages)
    topics = {s: f"{args.prefix}-{s}" for s in ("calls", "chats", "referrals")}
    admin = AdminClient({"bootstrap.servers": args.brokers})
    new = [NewTopic(t, num_partitions=args.partitions, replication_factor=1)
           for t in topics.values()]
    for _, fut in admin.create_topics(new, operation_timeout=10).items():
        try:
            fut.result()
        except KafkaException as e:
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise
    failures = []

    def report(err, _msg):
        if err is not None:
            failures.append(str(err))

    producer = Producer({"bootstrap.servers": args.brokers, "linger.ms": 5, "acks": "all",
                         "message.timeout.ms": 120000})
    for (suffix, key), value in messages:
        while True:
            try:
                producer.produce(topics[suffix], value=value, key=key or None,
                                 on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
    left = producer.flush(180)
    if failures or left:
        sys.exit(f"{len(failures)} deliveries failed, {left} unacknowledged: {failures[:3]}")
    print(json.dumps({"messages": len(messages), "lines": len(lines), "resent": args.dups,
                      "topics": list(topics.values())}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compute", help="answer every named question from NDJSON files")
    c.add_argument("events", nargs="+", help="NDJSON files (valid and malformed lines)")
    c.add_argument("--year", type=int, required=True)
    c.add_argument("--as-of", help="RFC 3339 instant; default the latest event")
    c.add_argument("--callback-target-hours", type=float, default=72.0)
    c.add_argument("--risk-threshold", type=int, default=3)
    c.add_argument("--reference", default=str(Path(__file__).resolve().parents[2]
                                              / "schemas/reference/milano"))
    c.add_argument("--out")
    p = sub.add_parser("produce", help="send NDJSON lines to Kafka with confluent-kafka")
    p.add_argument("events", nargs="+")
    p.add_argument("--brokers", required=True)
    p.add_argument("--prefix", required=True, help="topic prefix, unique per test")
    p.add_argument("--dups", type=int, default=0, help="lines to send a second time")
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.cmd == "compute":
        compute(args)
    else:
        produce(args)


if __name__ == "__main__":
    main()
