#!/usr/bin/env python3
"""Independent oracle for the datetime expert (experts/datetime.cpp): dates chosen here, the
answers computed with Python's datetime (proleptic Gregorian) and zoneinfo, rendered in the
expert's documented formats. "Today" is the instant NOW in ZONE (the test builds the expert with
the same clock and zone). Plus cases that must decline.

  python3 tools/oracles/dates.py > tests/data/experts/datetime.tsv

(Named dates.py: a file named datetime.py would shadow the module it uses.)
"""
import calendar
import random
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from suite import write_suite

NOW = 1795415400  # 2026-11-23 06:30:00 UTC: still Sunday 2026-11-22 in Los Angeles
ZONE = "America/Los_Angeles"

MONTHS = list(calendar.month_name)[1:]
WEEKDAYS = list(calendar.day_name)  # Monday first


def iso(d):
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"


def long_us(d):
    return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"


def long_eu(d):
    return f"{d.day} {MONTHS[d.month - 1]} {d.year}"


STYLES = [iso, long_us, long_eu]


def written(r, d):
    """The date as a question might write it, and the style answers come back in."""
    style = r.choice(STYLES)
    text = style(d)
    if style is long_us and r.random() < 0.3:
        text = f"{MONTHS[d.month - 1][:3]} {d.day}, {d.year}"
    if style is long_us and r.random() < 0.2:
        suffix = "th" if 11 <= d.day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(d.day % 10, "th")
        text = f"{MONTHS[d.month - 1]} {d.day}{suffix}, {d.year}"
    return text, style


def some_date(r):
    return date(r.randrange(1, 10000) if r.random() < 0.2 else r.randrange(1900, 2100),
                r.randrange(1, 13), r.randrange(1, 29 + 1))


def add_months(d, n):
    """d plus n calendar months; a day the month lacks is clamped to its last day (the
    expert's stated rule, as spreadsheets' EDATE)."""
    m = d.month - 1 + n
    y, m = d.year + m // 12, m % 12 + 1
    if not 1 <= y <= 9999:
        return None
    return date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def main():
    r = random.Random(20261123)
    today = datetime.fromtimestamp(NOW, timezone.utc).astimezone(ZoneInfo(ZONE)).date()
    today_long = f"{WEEKDAYS[today.weekday()]}, {long_us(today)}"
    rows = [("Today is", today_long), ("Today's date is", today_long),
            ("The current date is", today_long), ("So today is", today_long),
            ("The day of the week today is", WEEKDAYS[today.weekday()]),
            ("Today's weekday is", WEEKDAYS[today.weekday()]),
            ("2024-02-29 was a", "Thursday"), ("March 14, 2015 was a", "Saturday"),
            ("The number of days between 2024-01-01 and 2024-12-25 is", "359"),
            ("2024-01-31 + 30 days =", "2024-03-01"), ("90 days after March 1, 2024 is", "May 30, 2024"),
            ("2 weeks before 2024-01-10 is", "2023-12-27"), ("2023-05-31 plus 3 months =", "2023-08-31"),
            ("The number of days from 2024-12-25 to 2024-01-01 is", "-359"),
            ("1 January 2000 was a", "Saturday"), ("0001-01-01 was a", "Monday"),
            ("9999-12-31 is a", "Friday"), ("2024-02-29 + 1 year =", "DECLINE")]
    rows[-1] = ("2024-02-29 + 4 years =", "2028-02-29")
    # Questions, tomorrow and yesterday, the time, leap years.
    now = datetime.fromtimestamp(NOW, timezone.utc).astimezone(ZoneInfo(ZONE))
    tomorrow, yesterday = today + timedelta(days=1), today - timedelta(days=1)

    def long_day(d):
        return f"{WEEKDAYS[d.weekday()]}, {long_us(d)}"

    rows += [("What day is today?", today_long), ("What's the date?", today_long),
             ("what is today's date?", today_long), ("So what date is it?", today_long),
             ("What day of the week is it?", WEEKDAYS[today.weekday()]),
             ("What weekday is today?", WEEKDAYS[today.weekday()]),
             ("What day is tomorrow?", long_day(tomorrow)), ("Tomorrow is", long_day(tomorrow)),
             ("Tomorrow's date is", long_day(tomorrow)), ("Yesterday was", long_day(yesterday)),
             ("What day was yesterday?", long_day(yesterday)),
             ("What time is it?", f"{now.hour:02d}:{now.minute:02d}"),
             ("Hi there. What time is it now?", f"{now.hour:02d}:{now.minute:02d}")]
    # End-of-month rule: clamped to the month's last day.
    rows += [("2024-01-31 + 1 month =", "2024-02-29"), ("2023-01-31 + 1 month =", "2023-02-28"),
             ("2024-02-29 + 1 year =", "2025-02-28"), ("March 31, 2024 + 1 month =", "April 30, 2024")]
    # Days until a holiday with a fixed date, from today on the clock.
    for name, month, day in [("Christmas", 12, 25), ("Christmas Eve", 12, 24),
                             ("New Year's Day", 1, 1), ("New Year's Eve", 12, 31),
                             ("Halloween", 10, 31), ("Valentine's Day", 2, 14)]:
        h = date(today.year, month, day)
        if h < today:
            h = date(today.year + 1, month, day)
        rows.append((f"How many days until {name}?", str((h - today).days)))
    for y in (1900, 2000, 2024, 2023, 2100, 2400, 1600, 4):
        leap = calendar.isleap(y)
        rows.append((f"Is {y} a leap year?", "Yes" if leap else "No"))
    seen = set(t for t, _ in rows)
    while len(rows) < 150:
        kind = r.randrange(4)
        d = some_date(r)
        t, style = written(r, d)
        if kind == 0:
            text = r.choice([f"{t} was a", f"{t} is a", f"{t} fell on a", f"The weekday of {t} is",
                             f"The day of the week for {t} is"])
            want = WEEKDAYS[d.weekday()]
        elif kind == 1:
            e = some_date(r) if r.random() < 0.3 else d + timedelta(days=r.randrange(-3000, 3000))
            if not 1 <= e.year <= 9999:
                continue
            u, _ = written(r, e)
            if r.random() < 0.5:
                text, want = f"The number of days between {t} and {u} is", str(abs((e - d).days))
            else:
                text, want = f"Days from {t} to {u} =", str((e - d).days)
        elif kind == 2:
            n = r.randrange(0, 2000)
            unit = r.choice(["days", "weeks"])
            delta = timedelta(days=n * (7 if unit == "weeks" else 1))
            sign = r.choice([1, -1])
            try:
                e = d + delta if sign > 0 else d - delta
            except OverflowError:
                continue
            if r.random() < 0.5:
                op = r.choice(["+", "plus"]) if sign > 0 else r.choice(["-", "minus"])
                text = f"{t} {op} {n:,} {unit} ="
            else:
                text = f"{n:,} {unit} {'after' if sign > 0 else 'before'} {t} is"
            want = style(e)
        else:
            n = r.randrange(1, 60)
            unit = r.choice(["months", "years"])
            sign = r.choice([1, -1])
            e = add_months(d, sign * n * (12 if unit == "years" else 1))
            if e is None:
                continue
            text = f"{t} {'+' if sign > 0 else '-'} {n} {unit} ="
            want = style(e)
        if text in seen:
            continue
        seen.add(text)
        rows.append((text, want))
    declines = {
        "not a date question": ["room 127 =", "approximately 3 × 4 =", "x = 5",
                                "The weather today is", "The answer today is", "Today",
                                "Tuesday is a"],
        "an ambiguous date: day/month order unknown": ["03/04/2024 was a", "04.03.2024 was a"],
        "a date that does not exist": ["2023-02-29 was a", "February 30, 2024 is a",
                                       "2024-13-01 was a"],
        "a holiday whose date depends on the country or the year": [
            "How many days until Easter?", "How many days until Independence Day?",
            "How many days until Thanksgiving?", "How many days until my birthday?"],
        "outside years 1 to 9999": ["9999-12-31 + 1 day =", "0001-01-01 - 1 day ="],
        "a hedge: the text asks for an estimate": ["about 30 days after 2024-01-01 is"],
        "not asked: no verb or '=' where the answer goes": [
            "Days between 2024-01-01 and 2024-02-01", "The date 2024-01-01 was an"],
        "glued to a word: part of something else": ["x2024-01-01 was a"],
        "a question about another place, an event, or a year outside 1 to 9999": [
            "What day is it in Tokyo?", "What time is the meeting?", "Is 2024 a good year?",
            "Is 10000 a leap year?", "Is 0 a leap year?", "What time is it in Paris?"],
        "a unit of time it does not add (fortnights, fractional days)": [
            "2024-01-01 + 3 fortnights =", "2024-01-01 + 1.5 days ="],
    }
    write_suite(rows, declines)


if __name__ == "__main__":
    main()
