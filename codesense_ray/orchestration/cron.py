"""Cron expressions as KFP's scheduler accepts them, checked before any call to the KFP API.

KFP parses cron with a *seconds* field first (robfig/cron): `"0 0 3 * * *"` is 03:00:00 every day. The
classic 5-field form (`"0 3 * * *"`, what crontab and GitLab schedules use) is accepted too and gets
`0` seconds prepended. Descriptors `@hourly`, `@daily`/`@midnight`, `@weekly`, `@monthly`,
`@yearly`/`@annually` and `@every <duration>` pass through.

    >>> to_kfp_cron("0 3 * * 1-5")
    '0 0 3 * * 1-5'
"""

from __future__ import annotations

import re

from codesense_ray.errors import InvalidSchedule

_MONTHS = {m: i for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), start=1)}
_DAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split())}
# (name, low, high, names, `?` allowed)
_FIELDS = [
    ("second", 0, 59, {}, False),
    ("minute", 0, 59, {}, False),
    ("hour", 0, 23, {}, False),
    ("day-of-month", 1, 31, {}, True),
    ("month", 1, 12, _MONTHS, False),
    ("day-of-week", 0, 6, _DAYS, True),
]
_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")


def _value(text: str, name: str, lo: int, hi: int, names: dict[str, int]) -> int:
    key = text.upper()
    if key in names:
        return names[key]
    if not text.isdigit():
        raise InvalidSchedule(f"invalid cron {name} value {text!r}")
    value = int(text)
    if not lo <= value <= hi:
        raise InvalidSchedule(f"cron {name} value {value} out of range {lo}-{hi}")
    return value


def _check_field(text: str, name: str, lo: int, hi: int, names: dict[str, int], question: bool) -> None:
    if not text:
        raise InvalidSchedule(f"empty cron {name} field")
    for item in text.split(","):
        base, _, step = item.partition("/")
        if step:
            if not step.isdigit() or int(step) < 1:
                raise InvalidSchedule(f"invalid cron {name} step {step!r} in {item!r}")
        if base in ("*", "?"):
            if base == "?" and not question:
                raise InvalidSchedule(f"`?` is only allowed in day-of-month and day-of-week, not in {name}")
            continue
        start, dash, end = base.partition("-")
        a = _value(start, name, lo, hi, names)
        if dash:
            b = _value(end, name, lo, hi, names)
            if a > b:
                raise InvalidSchedule(f"cron {name} range {base!r} runs backwards")


def to_kfp_cron(expr: str) -> str:
    """Validate `expr` and return it in KFP's 6-field form; `InvalidSchedule` says which field is wrong."""
    text = " ".join(str(expr or "").split())
    if not text:
        raise InvalidSchedule("empty cron expression")
    if text.startswith("@"):
        if text in _DESCRIPTORS:
            return text
        word, _, duration = text.partition(" ")
        if word == "@every" and _DURATION.match(duration):
            return text
        raise InvalidSchedule(f"unknown cron descriptor {text!r} (use @hourly, @daily, @weekly, @monthly, @yearly or @every 1h30m)")
    fields = text.split(" ")
    if len(fields) == 5:
        fields = ["0", *fields]
    elif len(fields) != 6:
        raise InvalidSchedule(
            f"cron expression {text!r} has {len(fields)} fields; expected 5 (minute hour day month weekday) or 6 (with seconds first)"
        )
    for value, (name, lo, hi, names, question) in zip(fields, _FIELDS):
        _check_field(value, name, lo, hi, names, question)
    return " ".join(fields)
