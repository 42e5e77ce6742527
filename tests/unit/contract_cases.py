"""The table of wire-contract cases (CONTRACT.md section 1), shared by the tests of
`events.parse` and of the published JSON Schema.

Each case is a record value (bytes), whether it is accepted, the fragments the refusal
reason must contain, and whether the JSON Schema agrees with the consumer on it (a few
rules are only checked by the consumer: see events/json_schema.py).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from events.envelope import ADJUSTED, HEARTBEAT, PURCHASED, STARTED, STOPPED

REPO = Path(__file__).resolve().parents[2]
EXAMPLES_FILE = REPO / "docs" / "examples" / "events.jsonl"
MAX_ID = 2**63 - 1
_DELETE = object()


@dataclass(frozen=True)
class Case:
    label: str
    value: bytes | None
    reason: tuple[str, ...] = ()
    """Fragments of the refusal reason; empty for an accepted value."""
    schema_agrees: bool = True

    @property
    def accepted(self) -> bool:
        return not self.reason


def base(kind: str) -> dict[str, Any]:
    """A complete, valid event of `kind` (a fresh copy)."""
    data: dict[str, Any] = {
        PURCHASED: {
            "userPackId": 1001,
            "userId": 7,
            "userName": "alice",
            "packName": "A100 x8 - 10 hours",
            "packDurationType": "type.timing",
            "durationSeconds": 36000,
            "buyDatetime": "2024-05-01T08:59:30+08:00",
            "nodeList": [
                {
                    "nodeId": 11,
                    "nodeName": "a100-master-1",
                    "nodeType": "nodeType.master",
                    "cpuCount": 64,
                    "gpuCount": 8,
                    "memorySize": 512,
                },
                {
                    "nodeId": 12,
                    "nodeName": "a100-worker-1",
                    "nodeType": "nodeType.worker",
                    "cpuCount": 64,
                    "gpuCount": 8,
                    "memorySize": 512,
                },
            ],
        },
        ADJUSTED: {"userPackId": 1001, "deltaSeconds": 1800, "reason": "compensation"},
        STARTED: {
            "userPackId": 1001,
            "trainId": 5001,
            "trainName": "llama-finetune",
            "userId": 7,
            "userName": "alice",
            "leaseSeconds": 3600,
        },
        HEARTBEAT: {"userPackId": 1001, "trainId": 5001},
        STOPPED: {"userPackId": 1001, "trainId": 5001, "reason": "completed"},
    }[kind]
    return copy.deepcopy(
        {
            "specversion": "1.0",
            "id": f"test/{kind}/1",
            "source": "scheduler/cluster-a",
            "type": kind,
            "time": "2024-05-01T10:00:00+08:00",
            "subject": "1001",
            "data": data,
        }
    )


def mutate(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of `event` with dotted paths (`data__nodeList__0__nodeType`) set or deleted."""
    event = copy.deepcopy(event)
    for path, value in changes.items():
        *parents, last = path.split("__")
        node: Any = event
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return event


def encode(event: Any) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode()


def ok(label: str, event: Any, *, schema_agrees: bool = True) -> Case:
    return Case(label, encode(event), (), schema_agrees)


def bad(label: str, event: Any, *reason: str, schema_agrees: bool = True) -> Case:
    value = event if isinstance(event, bytes) or event is None else encode(event)
    return Case(label, value, reason, schema_agrees)


def _change(kind: str, **changes: Any) -> dict[str, Any]:
    return mutate(base(kind), **changes)


def _drop(kind: str, *paths: str) -> dict[str, Any]:
    return mutate(base(kind), **dict.fromkeys(paths, _DELETE))


KINDS = (PURCHASED, ADJUSTED, STARTED, HEARTBEAT, STOPPED)

# Every id field of every type, as (kind, dotted path).
ID_FIELDS = (
    (PURCHASED, "data__userPackId"),
    (PURCHASED, "data__userId"),
    (PURCHASED, "data__nodeList__0__nodeId"),
    (ADJUSTED, "data__userPackId"),
    (STARTED, "data__userPackId"),
    (STARTED, "data__trainId"),
    (STARTED, "data__userId"),
    (HEARTBEAT, "data__userPackId"),
    (HEARTBEAT, "data__trainId"),
    (STOPPED, "data__userPackId"),
    (STOPPED, "data__trainId"),
)

REQUIRED_DATA = {
    PURCHASED: ("userPackId", "userId", "packName", "packDurationType", "nodeList"),
    ADJUSTED: ("userPackId", "deltaSeconds", "reason"),
    STARTED: ("userPackId", "trainId", "trainName", "userId", "userName"),
    HEARTBEAT: ("userPackId", "trainId"),
    STOPPED: ("userPackId", "trainId"),
}


def _dotted(path: str) -> str:
    return path.replace("__", ".")


def _without_subject(kind: str, **changes: Any) -> dict[str, Any]:
    return mutate(base(kind), subject=_DELETE, **changes)


def accepted_cases() -> list[Case]:
    cases = [ok(f"{kind} complete", base(kind)) for kind in KINDS]
    cases += [ok(f"{kind} without subject", _drop(kind, "subject")) for kind in KINDS]
    # Ids as strings of digits, everywhere (the subject still matches).
    for kind, path in ID_FIELDS:
        value = str(_get(base(kind), path))
        cases.append(ok(f"{kind} {_dotted(path)} as digits", _change(kind, **{path: value})))
    cases += [
        ok("largest id as number", _without_subject(STARTED, data__trainId=MAX_ID)),
        ok("largest id as digits", _without_subject(STARTED, data__trainId=str(MAX_ID))),
        ok("id 1", _without_subject(STARTED, data__trainId=1)),
        ok("leading zeros in digit id", _change(STARTED, data__userPackId="0001001")),
        ok("subject with a digit-string id", _change(STOPPED, data__userPackId="1001")),
        # A subject of zero-padded digits names the same pack (CONTRACT.md section 1).
        ok("subject with leading zeros", _change(STARTED, subject="01001")),
        ok(
            "subject and id both zero-padded, differently",
            _change(STARTED, subject="0001001", data__userPackId="01001"),
        ),
        ok(
            "id with thousands of leading zeros",
            _change(STARTED, subject="0" * 5000 + "1001", data__userPackId="0" * 5000 + "1001"),
        ),
        # Optional fields left out.
        ok(
            "purchase without userName and buyDatetime",
            _drop(PURCHASED, "data__userName", "data__buyDatetime"),
        ),
        ok("stop without reason", _drop(STOPPED, "data__reason")),
        # Leases (CONTRACT.md section 2).
        ok("start without a lease", _drop(STARTED, "data__leaseSeconds")),
        ok("start with the shortest lease", _change(STARTED, data__leaseSeconds=1)),
        ok("start with the longest lease", _change(STARTED, data__leaseSeconds=86400)),
        ok("start with lease null", _change(STARTED, data__leaseSeconds=None)),
        ok("stop with any reason", _change(STOPPED, data__reason="preempted by ops")),
        ok("stop reason exhausted", _change(STOPPED, data__reason="exhausted")),
        ok("stop reason null", _change(STOPPED, data__reason=None)),
        ok("subject null", _change(STOPPED, subject=None)),
        ok("datacontenttype", _change(STARTED, datacontenttype="application/json")),
        ok("purchase with no nodes", _change(PURCHASED, data__nodeList=[])),
        ok("timing pack with 0 seconds", _change(PURCHASED, data__durationSeconds=0)),
        ok("userName null", _change(PURCHASED, data__userName=None)),
        # Activity packs.
        ok(
            "activity pack with end time",
            mutate(
                base(PURCHASED),
                data__durationSeconds=_DELETE,
                data__packDurationType="type.activity",
                data__activityEndTime="2024-06-01T00:00:00Z",
            ),
        ),
        ok(
            "activity pack without end time or duration",
            _change(PURCHASED, data__packDurationType="type.activity", data__durationSeconds=None),
        ),
        ok(
            "activity pack with a duration",
            _change(PURCHASED, data__packDurationType="type.activity"),
        ),
        # Adjustments both ways.
        ok("negative adjustment", _change(ADJUSTED, data__deltaSeconds=-600)),
        ok("empty adjustment reason", _change(ADJUSTED, data__reason="")),
        # Extension attributes and unknown data fields are kept/ignored, never refused.
        ok(
            "extension attributes",
            _change(
                STARTED,
                traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                partitionkey="1001",
                clusterregion="cn-east",
            ),
        ),
        ok("unknown data fields", _change(STARTED, data__gpuModel="A100", data__priority=3)),
        # Times.
        ok("time in UTC with Z", _change(STARTED, time="2024-05-01T02:00:00Z")),
        ok("time with lowercase t and z", _change(STARTED, time="2024-05-01t02:00:00z")),
        ok("time with fraction", _change(STARTED, time="2024-05-01T02:00:00.123456+00:00")),
        ok("time with negative offset", _change(STARTED, time="2024-04-30T21:00:00-05:00")),
        ok("time with space separator", _change(STARTED, time="2024-05-01 02:00:00Z")),
        *time_cases_accepted(),
        *count_cases_accepted(),
        *text_limit_cases_accepted(),
        ok(
            "an escaped backslash before u0000 is text, not U+0000",
            _change(STARTED, data__trainName="a\\u0000b", data__gpu={"k\\u0000": "\\u0000"}),
        ),
        # Event ids.
        ok("id of 1 char", _change(STARTED, id="x")),
        ok("id of 128 chars", _change(STARTED, id="x" * 128)),
        ok("id with unicode", _change(STARTED, id="训练/5001/开始")),
    ]
    return cases


def refused_cases() -> list[Case]:
    not_object = "not a CloudEvent: the value is not a JSON object"
    cases = [
        bad("no value", None, "empty record", schema_agrees=False),
        bad("empty value", b"", "not valid JSON", schema_agrees=False),
        bad("not JSON", b"purchased pack 1001", "not valid JSON", schema_agrees=False),
        bad("truncated JSON", encode(base(STARTED))[:-3], "not valid JSON", schema_agrees=False),
        bad("not UTF-8", b'{"id": "\xff"}', "not valid JSON", schema_agrees=False),
        bad("JSON array", [base(STARTED)], not_object),
        bad("JSON string", "infinite.pack.purchased", not_object),
        bad("JSON number", 1001, not_object),
        bad("JSON null", b"null", not_object),
        bad("missing type", _drop(STARTED, "type"), "missing attribute 'type'"),
        bad(
            "unknown type",
            _change(STARTED, type="infinite.pack.deleted"),
            "unknown type 'infinite.pack.deleted'",
            "infinite.pack.purchased",
        ),
        bad("outbound type inbound", _change(STARTED, type="infinite.pack.exhausted"), "unknown"),
        bad("specversion 0.3", _change(STARTED, specversion="0.3"), "specversion"),
        bad("specversion number", _change(STARTED, specversion=1.0), "specversion"),
        bad("empty id", _change(STARTED, id=""), "id: ", "at least 1 character"),
        bad("id of 129 chars", _change(STARTED, id="x" * 129), "id: ", "at most 128"),
        bad("id number", _change(STARTED, id=17), "id: ", "valid string"),
        bad("empty source", _change(STARTED, source=""), "source: "),
        bad("naive time", _change(STARTED, time="2024-05-01T10:00:00"), "time: ", "no offset"),
        bad(
            "naive time with fraction",
            _change(STARTED, time="2024-05-01T10:00:00.5"),
            "time: ",
            "no offset",
        ),
        bad("time as epoch number", _change(STARTED, time=1714528800), "time: ", "RFC 3339"),
        bad("time as epoch digits", _change(STARTED, time="1714528800"), "time: ", "RFC 3339"),
        bad("time as date", _change(STARTED, time="2024-05-01"), "time: ", "RFC 3339"),
        bad("time without seconds", _change(STARTED, time="2024-05-01T10:00+08:00"), "time: "),
        bad("offset without colon", _change(STARTED, time="2024-05-01T10:00:00+0800"), "time: "),
        bad("time not a time", _change(STARTED, time="yesterday"), "time: "),
        bad("time null", _change(STARTED, time=None), "time: "),
        bad(
            "naive buyDatetime",
            _change(PURCHASED, data__buyDatetime="2024-05-01 08:59:30"),
            "data.buyDatetime: ",
            "no offset",
        ),
        bad(
            "naive activityEndTime",
            _change(
                PURCHASED,
                data__packDurationType="type.activity",
                data__activityEndTime="2024-06-01T00:00:00",
            ),
            "data.activityEndTime: ",
        ),
        bad("data array", _change(STARTED, data=[]), "data: ", "object"),
        bad("data null", _change(STARTED, data=None), "data: ", "object"),
        bad("data string", _change(STARTED, data="{}"), "data: ", "object"),
        # Subject.
        bad(
            "subject not matching",
            _change(STARTED, subject="1002"),
            "subject '1002' does not match data.userPackId 1001",
            schema_agrees=False,
        ),
        bad(
            "subject zero-padded naming another pack, not matching",
            _change(STARTED, subject="01002"),
            "subject '01002' does not match data.userPackId 1001",
            schema_agrees=False,
        ),
        bad(
            "subject of signed digits not matching",
            _change(STARTED, subject="+1001"),
            "subject '+1001' does not match",
            schema_agrees=False,
        ),
        bad("subject number", _change(STARTED, subject=1001), "subject: ", "valid string"),
        # Purchase rules.
        bad("empty packName", _change(PURCHASED, data__packName=""), "data.packName: "),
        bad("packName of 256 chars", _change(PURCHASED, data__packName="p" * 256), "at most 255"),
        bad("packName number", _change(PURCHASED, data__packName=5), "data.packName: "),
        bad(
            "durationSeconds missing for type.timing",
            _drop(PURCHASED, "data__durationSeconds"),
            "durationSeconds is required for type.timing",
        ),
        bad(
            "durationSeconds null for type.timing",
            _change(PURCHASED, data__durationSeconds=None),
            "durationSeconds is required for type.timing",
        ),
        bad(
            "negative durationSeconds",
            _change(PURCHASED, data__durationSeconds=-1),
            "data.durationSeconds: ",
            "greater than or equal to 0",
        ),
        bad(
            "fractional durationSeconds",
            _change(PURCHASED, data__durationSeconds=1.5),
            "data.durationSeconds: ",
        ),
        bad(
            "boolean durationSeconds",
            _change(PURCHASED, data__durationSeconds=True),
            "data.durationSeconds: ",
            "boolean",
        ),
        bad(
            "activityEndTime on a timing pack",
            _change(PURCHASED, data__activityEndTime="2024-06-01T00:00:00Z"),
            "activityEndTime is only allowed for type.activity",
        ),
        bad(
            "unknown packDurationType",
            _change(PURCHASED, data__packDurationType="type.monthly"),
            "data.packDurationType: ",
            "type.timing",
        ),
        bad(
            "bad nodeType",
            _change(PURCHASED, data__nodeList__1__nodeType="worker"),
            "data.nodeList.1.nodeType: ",
            "nodeType.master",
        ),
        bad(
            "bad nodeType of the first node",
            _change(PURCHASED, data__nodeList__0__nodeType="master"),
            "data.nodeList.0.nodeType: ",
        ),
        bad(
            "missing nodeType",
            _drop(PURCHASED, "data__nodeList__0__nodeType"),
            "data.nodeList.0.nodeType: Field required",
        ),
        bad(
            "negative cpuCount",
            _change(PURCHASED, data__nodeList__0__cpuCount=-8),
            "data.nodeList.0.cpuCount: ",
        ),
        bad(
            "boolean gpuCount",
            _change(PURCHASED, data__nodeList__0__gpuCount=True),
            "data.nodeList.0.gpuCount: ",
            "boolean",
        ),
        bad("nodeList object", _change(PURCHASED, data__nodeList={}), "data.nodeList: "),
        bad("nodeList null", _change(PURCHASED, data__nodeList=None), "data.nodeList: "),
        bad("userName number", _change(PURCHASED, data__userName=7), "data.userName: "),
        # Adjustments.
        bad(
            "deltaSeconds 0",
            _change(ADJUSTED, data__deltaSeconds=0),
            "deltaSeconds must not be 0",
        ),
        bad(
            "boolean deltaSeconds",
            _change(ADJUSTED, data__deltaSeconds=True),
            "data.deltaSeconds: ",
            "boolean",
        ),
        bad(
            "fractional deltaSeconds",
            _change(ADJUSTED, data__deltaSeconds=0.5),
            "data.deltaSeconds: ",
        ),
        bad(
            "deltaSeconds beyond 10^12 (bigint-safe sums)",
            _change(ADJUSTED, data__deltaSeconds=-(10**12) - 1),
            "data.deltaSeconds: ",
            "greater than or equal to -1000000000000",
        ),
        bad(
            "durationSeconds beyond 10^12",
            _change(PURCHASED, data__durationSeconds=10**12 + 1),
            "data.durationSeconds: ",
            "less than or equal to 1000000000000",
        ),
        bad("reason number", _change(ADJUSTED, data__reason=3), "data.reason: "),
        # Trainings.
        bad("trainName list", _change(STARTED, data__trainName=["a"]), "data.trainName: "),
        bad(
            "lease of 0 seconds",
            _change(STARTED, data__leaseSeconds=0),
            "data.leaseSeconds: ",
            "greater than or equal to 1",
        ),
        bad(
            "lease longer than a day",
            _change(STARTED, data__leaseSeconds=86401),
            "data.leaseSeconds: ",
            "less than or equal to 86400",
        ),
        bad(
            "negative lease",
            _change(STARTED, data__leaseSeconds=-60),
            "data.leaseSeconds: ",
            "greater than or equal to 1",
        ),
        *time_cases_refused(),
        *count_cases_refused(),
        *text_limit_cases_refused(),
        *nul_cases_refused(),
        bad("stop reason number", _change(STOPPED, data__reason=1), "data.reason: "),
    ]
    # Every required envelope attribute.
    for attribute in ("specversion", "id", "source", "time", "data"):
        cases.append(
            bad(f"missing {attribute}", _drop(STARTED, attribute), f"{attribute}: Field required")
        )
    # Every required data field of every type.
    for kind, fields in REQUIRED_DATA.items():
        for field in fields:
            # Without a userPackId the subject cannot match anything: drop it too.
            event = mutate(base(kind), subject=_DELETE, **{f"data__{field}": _DELETE})
            cases.append(
                bad(f"{kind} missing data.{field}", event, f"data.{field}: Field required")
            )
    # Every id field refuses every bad id.
    bad_ids: list[tuple[str, Any, str, bool]] = [
        ("0", 0, "greater than or equal to 1", True),
        ("negative", -5, "greater than or equal to 1", True),
        ("2^63", 2**63, "less than or equal to 9223372036854775807", True),
        ("2^63 as digits", str(2**63), "less than or equal to 9223372036854775807", False),
        ("10^30", 10**30, "less than or equal to", True),
        ("'0'", "0", "greater than or equal to 1", True),
        ("true", True, "positive integer or a string of digits", True),
        ("false", False, "positive integer or a string of digits", True),
        ("fraction", 12.5, "not a fraction", True),
        ("integral float", 12.0, "without a fraction part (12, not 12.0)", False),
        ("negative digits", "-5", "string of digits", True),
        ("digits with space", " 12", "string of digits", True),
        ("hex", "0x1f", "string of digits", True),
        ("empty string", "", "string of digits", True),
        ("non-ASCII digits", "١٢", "string of digits", True),
        ("null", None, "valid integer", True),
        ("object", {"id": 1}, "valid integer", True),
    ]
    for kind, path in ID_FIELDS:
        for name, value, fragment, agrees in bad_ids:
            event = mutate(base(kind), subject=_DELETE, **{path: value})
            cases.append(
                bad(
                    f"{kind} {_dotted(path)} {name}",
                    event,
                    f"{_dotted(path)}: ",
                    fragment,
                    schema_agrees=agrees,
                )
            )
    return cases


# Every time field, as (kind, dotted path, the rest of the event it needs).
TIME_FIELDS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (STARTED, "time", {}),
    (PURCHASED, "data__buyDatetime", {}),
    (
        PURCHASED,
        "data__activityEndTime",
        {"data__packDurationType": "type.activity", "data__durationSeconds": _DELETE},
    ),
)

# The ends of the contract's range (events/times.py), each side, with offsets that put
# the local date on the other side of the UTC day.
TIMES_IN_RANGE = (
    "0001-01-02T00:00:00Z",
    "0001-01-01T23:00:00-01:00",
    "0001-01-01T10:00:00.5-14:00",
    "9999-12-30T23:59:59.999999Z",
    "9999-12-31T00:59:59.999999+01:00",
    "9999-12-31T13:59:59+14:00",
    "9999-12-30T23:59:60Z",  # a leap second, read as 23:59:59.999999: still inside
)
TIMES_OUT_OF_RANGE = (
    "0001-01-01T23:59:59.999999Z",
    "0001-01-02T00:59:59+01:00",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "0000-12-31T23:00:00-01:00",
    "9999-12-31T00:00:00Z",
    "9999-12-30T23:00:00-01:00",
    "9999-12-31T23:59:59-01:00",  # issue 11: its exhaustion instant overflowed
    "9999-12-31T23:59:59.999999Z",
)

LEAP_SECONDS = (
    "2016-12-31T23:59:60Z",
    "2016-12-31T23:59:60.5Z",
    "2016-12-31T23:59:60.999999999Z",
    "2017-01-01T07:59:60.123+08:00",
    "2016-12-31T18:59:60-05:00",
)


def _at(kind: str, path: str, text: str, rest: dict[str, Any]) -> dict[str, Any]:
    return mutate(base(kind), **rest, **{path: text})


def time_cases_accepted() -> list[Case]:
    cases = [
        ok(f"{_dotted(path)} {text} in range", _at(kind, path, text, rest))
        for kind, path, rest in TIME_FIELDS
        for text in TIMES_IN_RANGE
    ]
    cases += [ok(f"leap second {text}", _change(STARTED, time=text)) for text in LEAP_SECONDS]
    return cases


def time_cases_refused() -> list[Case]:
    """The JSON Schema cannot say the range: these are known differences."""
    return [
        bad(
            f"{_dotted(path)} {text} out of range",
            _at(kind, path, text, rest),
            f"{_dotted(path)}: '{text}' is outside the contract's range",
            "0001-01-02T00:00:00Z and 9999-12-30T23:59:59.999999Z",
            schema_agrees=False,
        )
        for kind, path, rest in TIME_FIELDS
        for text in TIMES_OUT_OF_RANGE
    ]


# Every count field, as (kind, dotted path).
COUNT_FIELDS = (
    (PURCHASED, "data__durationSeconds"),
    (ADJUSTED, "data__deltaSeconds"),
    (STARTED, "data__leaseSeconds"),
    (PURCHASED, "data__nodeList__0__cpuCount"),
    (PURCHASED, "data__nodeList__0__gpuCount"),
    (PURCHASED, "data__nodeList__1__memorySize"),
)


def count_cases_accepted() -> list[Case]:
    """`3600.0` is the number 3600, as JSON Schema's `type: integer` says."""
    cases = [
        ok(
            f"{_dotted(path)} as an integral float",
            _change(kind, **{path: float(_get(base(kind), path))}),
        )
        for kind, path in COUNT_FIELDS
    ]
    exponent = encode(base(PURCHASED)).replace(
        b'"durationSeconds": 36000', b'"durationSeconds": 3.6e4'
    )
    cases.append(Case("durationSeconds in exponent notation", exponent))
    cases.append(
        ok("negative integral float deltaSeconds", _change(ADJUSTED, data__deltaSeconds=-600.0))
    )
    return cases


def count_cases_refused() -> list[Case]:
    cases: list[Case] = []
    for kind, path in COUNT_FIELDS:
        where = f"{_dotted(path)}: "
        number = _get(base(kind), path)
        cases += [
            bad(
                f"{kind} {_dotted(path)} as digits",
                _change(kind, **{path: str(number)}),
                where,
                "not a string",
            ),
            bad(
                f"{kind} {_dotted(path)} fraction",
                _change(kind, **{path: number + 0.5}),
                where,
                "not a fraction",
            ),
            bad(
                f"{kind} {_dotted(path)} false",
                _change(kind, **{path: False}),
                where,
                "not a boolean",
            ),
        ]
    return cases


# Text limits of CONTRACT.md section 1, in characters (not bytes): (kind, path, min, max).
TEXT_LIMITS = (
    (PURCHASED, "data__packName", 1, 255),
    (PURCHASED, "data__nodeList__0__nodeName", 0, 255),
    (PURCHASED, "data__userName", 0, 255),
    (STARTED, "data__userName", 0, 255),
    (STARTED, "data__trainName", 1, 1000),
    (ADJUSTED, "data__reason", 0, 1000),
    (STOPPED, "data__reason", 0, 1000),
)
WIDE = "训"  # three bytes in UTF-8: a limit counted in bytes would refuse it early
EMOJI = "🚀"  # four bytes, and two UTF-16 code units


def text_limit_cases_accepted() -> list[Case]:
    cases: list[Case] = []
    for kind, path, shortest, longest in TEXT_LIMITS:
        name = f"{kind} {_dotted(path)}"
        cases += [
            ok(f"{name} of {shortest} chars", _change(kind, **{path: "x" * shortest})),
            ok(f"{name} of {longest} wide chars", _change(kind, **{path: WIDE * longest})),
            ok(f"{name} of {longest} emoji", _change(kind, **{path: EMOJI * longest})),
        ]
    return cases


def text_limit_cases_refused() -> list[Case]:
    cases: list[Case] = []
    for kind, path, shortest, longest in TEXT_LIMITS:
        name, where = f"{kind} {_dotted(path)}", f"{_dotted(path)}: "
        cases.append(
            bad(
                f"{name} of {longest + 1} wide chars",
                _change(kind, **{path: WIDE * (longest + 1)}),
                where,
                f"at most {longest} characters",
            )
        )
        if shortest:
            cases.append(
                bad(
                    f"empty {name}",
                    _change(kind, **{path: ""}),
                    where,
                    f"at least {shortest} character",
                )
            )
    return cases


def nul_cases_refused() -> list[Case]:
    """PostgreSQL cannot store U+0000; JSON Schema cannot say it: known differences."""
    reason = "contains the character U+0000, which the ledger cannot store"
    return [
        bad(
            "data.trainName holding U+0000",
            _change(STARTED, data__trainName="a\x00b"),
            f"data.trainName: {reason}",
            schema_agrees=False,
        ),
        bad(
            "backslash then U+0000",
            _change(STARTED, data__trainName="a\\\x00"),
            f"data.trainName: {reason}",
            schema_agrees=False,
        ),
        bad(
            "id holding U+0000", _change(STARTED, id="x\x00"), f"id: {reason}", schema_agrees=False
        ),
        bad(
            "data key holding U+0000",
            _change(STARTED, data__extra={"k\x00": 1}),
            f"data.extra: a key {reason}",
            schema_agrees=False,
        ),
        bad(
            "nested extension holding U+0000",
            _change(STARTED, clusterinfo={"nodes": [{"name": "ok"}, {"name": "\x00"}]}),
            f"clusterinfo.nodes.1.name: {reason}",
            schema_agrees=False,
        ),
    ]


def _get(event: dict[str, Any], path: str) -> Any:
    node: Any = event
    for part in path.split("__"):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def example_lines() -> list[bytes]:
    """The non-blank lines of docs/examples/events.jsonl."""
    return [line.strip() for line in EXAMPLES_FILE.read_bytes().splitlines() if line.strip()]


ALL_CASES = accepted_cases() + refused_cases()
