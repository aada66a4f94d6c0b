#!/usr/bin/env python3
"""Independent oracle for the units expert (experts/units.cpp): conversions chosen here from this
file's own table of exact definitions (NIST Handbook 44 / SP 811: international yard and pound,
231 in^3 US gallon, 4.54609 L imperial gallon, thermochemical calorie, IT Btu, SI 2019
electronvolt), computed with Fraction and formatted by tools/oracles/calculator.py's formatter
(the documented format of experts/exact.h). Plus cases that must decline.

  python3 tools/oracles/units.py > tests/data/experts/units.tsv
"""
import random
import sys
from fractions import Fraction as F
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from calculator import fmt  # noqa: E402
from suite import write_suite  # noqa: E402

INCH = F("0.0254")
FOOT = 12 * INCH
YARD = 3 * FOOT
MILE = 5280 * FOOT
POUND = F("0.45359237")
HP = F("745.69987158227022")  # 550 ft·lbf/s, exactly
GALLON = 231 * INCH**3
CAL = F("4.184")

# kind -> {spelling: factor in the base unit}
TABLE = {
    "length": {"m": 1, "meters": 1, "km": 1000, "kilometers": 1000, "cm": F(1, 100),
               "mm": F(1, 1000), "in": INCH, "inches": INCH, "ft": FOOT, "feet": FOOT,
               "yards": YARD, "mi": MILE, "miles": MILE, "nautical miles": 1852, "nm": F(1, 10**9)},
    "mass": {"kg": 1, "g": F(1, 1000), "grams": F(1, 1000), "mg": F(1, 10**6), "lb": POUND,
             "pounds": POUND, "oz": POUND / 16, "ounces": POUND / 16, "stone": 14 * POUND,
             "tonnes": 1000, "short tons": 2000 * POUND, "long tons": 2240 * POUND},
    "volume": {"L": F(1, 1000), "liters": F(1, 1000), "mL": F(1, 10**6), "gallons": GALLON,
               "gal": GALLON, "imperial gallons": F("0.00454609"), "quarts": GALLON / 4,
               "pints": GALLON / 8, "cups": GALLON / 16, "fl oz": GALLON / 128,
               "tablespoons": GALLON / 256, "teaspoons": GALLON / 768, "cubic feet": FOOT**3,
               "m³": 1, "cubic inches": INCH**3},
    "area": {"m²": 1, "square meters": 1, "km²": 10**6, "sq ft": FOOT**2, "square feet": FOOT**2,
             "acres": 43560 * FOOT**2, "hectares": 10**4, "ha": 10**4, "square miles": MILE**2,
             "sq in": INCH**2},
    "speed": {"m/s": 1, "km/h": F(1000, 3600), "mph": MILE / 3600, "knots": F(1852, 3600),
              "ft/s": FOOT},
    "time": {"s": 1, "seconds": 1, "ms": F(1, 1000), "minutes": 60, "min": 60, "hours": 3600,
             "h": 3600, "days": 86400, "weeks": 7 * 86400},
    "data": {"bytes": 1, "B": 1, "bits": F(1, 8), "kB": 1000, "MB": 10**6, "GB": 10**9,
             "TB": 10**12, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
             "Mbit": F(10**6, 8), "gigabits": F(10**9, 8)},
    "energy": {"J": 1, "kJ": 1000, "cal": CAL, "kcal": 1000 * CAL, "calories": CAL,
               "Wh": 3600, "kWh": 3600 * 1000, "eV": F(1602176634, 10**28),
               "BTU": F("1055.05585262"), "joules": 1},
}
TEMPS = {"°C": "C", "celsius": "C", "degrees Celsius": "C", "°F": "F", "Fahrenheit": "F",
         "degrees Fahrenheit": "F", "K": "K", "kelvin": "K"}


def kelvin(scale, v):
    return {"C": v + F("273.15"), "F": (v - 32) * F(5, 9) + F("273.15"), "K": v}[scale]


def from_kelvin(scale, k):
    return {"C": k - F("273.15"), "F": (k - F("273.15")) * F(9, 5) + 32, "K": k}[scale]


def number(r):
    kind = r.randrange(4)
    if kind == 0:
        v = r.randrange(1, 100)
        return str(v), F(v)
    if kind == 1:
        v = r.randrange(100, 10**7)
        return (f"{v:,}" if r.random() < 0.5 else str(v)), F(v)
    if kind == 2:
        t = f"{r.randrange(0, 1000)}.{r.randrange(1, 1000)}"
        return t, F(t)
    t = f"{r.randrange(0, 10)}.{r.randrange(0, 100):02d}"
    return t, F(t)


def main():
    r = random.Random(20261123)
    rows = [("5 km in miles =", fmt(5000 / MILE) + " miles"),
            ("100 °F to °C:", fmt((100 - 32) * F(5, 9)) + " °C"),
            ("Convert 1 mile to km:", "1.609344 km"), ("1 lb in kg =", "0.45359237 kg"),
            ("0 K in °C is", "-273.15 °C"), ("-40 °C in °F =", "-40 °F"),
            ("1 GiB in MB =", "1073.741824 MB"), ("1 kWh in J =", "3600000 J"),
            ("1 acre in square meters =", "4046.8564224 square meters"),
            ("60 mph in km/h =", "96.56064 km/h"), ("5km in m =", "5000 m"),
            ("1 gallon in liters =", "3.785411784 liters"), ("2 in in cm =", "5.08 cm"),
            ("1 day in seconds is", "86400 seconds"), ("1,500 g in kg =", "1.5 kg"),
            ("A marathon is 26.2 miles into km =", fmt(F("26.2") * MILE / 1000) + " km"),
            # A food Calorie (capital C, or "Cal") is a kilocalorie; the small calorie is lowercase.
            ("1 Calorie in joules =", "4184 joules"), ("250 Calories in kJ =", "1046 kJ"),
            ("100 Cal in kJ =", "418.4 kJ"), ("1 calorie in joules =", "4.184 joules"),
            ("1 cal in J =", "4.184 J"), ("1 kcal in J =", "4184 J"),
            ("273.15 K in °C =", "0 °C"), ("32 °F in °C =", "0 °C"),
            # A request with no marker after it: the answer follows a colon.
            ("Convert 100 meters to feet", fmt(100 / FOOT) + " feet"),
            ("Convert 5 km to miles", fmt(5000 / MILE) + " miles"),
            ("convert 2 lb to kg", fmt(2 * POUND) + " kg"),
            # "How many U in Q?", power (hp is the mechanical horsepower), troy ounces.
            ("How many feet in a mile?", fmt(MILE / FOOT) + " feet"),
            ("How many grams are in 3 pounds?", fmt(3 * POUND * 1000) + " grams"),
            ("How many seconds are there in a day?", "86400 seconds"),
            ("How many inches in 2.5 ft?", fmt(F("2.5") * FOOT / INCH) + " inches"),
            ("So how many meters are in one mile?", fmt(MILE) + " meters"),
            ("1 hp in W =", fmt(HP) + " W"), ("100 kW in hp =", fmt(100000 / HP) + " hp"),
            ("1 PS in W =", "735.49875 W"), ("1 troy ounce in grams =", "31.1034768 grams"),
            ("10 sq ft in m² =", fmt(10 * FOOT * FOOT) + " m²"),
            ("3 KiB in bytes =", "3072 bytes")]
    seen = set(t for t, _ in rows)
    while len(rows) < 150:
        if r.random() < 0.15:
            a, b = r.sample(sorted(TEMPS), 2)
            if TEMPS[a] == TEMPS[b]:
                continue
            t, v = number(r)
            if r.random() < 0.3:
                t, v = "-" + t, -v
            if kelvin(TEMPS[a], v) < 0:
                continue
            out = from_kelvin(TEMPS[b], kelvin(TEMPS[a], v))
        else:
            kind = r.choice(sorted(TABLE))
            a, b = r.sample(sorted(TABLE[kind]), 2)
            t, v = number(r)
            out = v * TABLE[kind][a] / TABLE[kind][b]
        conn = r.choice([" in ", " to ", " in ", " into "])
        lead = r.choice(["", "", "Convert ", "So ", "That is, "])
        text = lead + t + " " + a + conn + b + r.choice([" =", " = ", ":", " is"])
        if text in seen:
            continue
        seen.add(text)
        rows.append((text, fmt(out) + " " + b))
    declines = {
        "no unit to convert from: a number alone, or a unit without a number": [
            "room 127 in meters =", "x = 5", "km in miles =", "x5 km in miles ="],
        "a hedge: the text asks for an estimate": [
            "approximately 5 km in miles =", "about 3 kg to lb =", "~5 km in miles ="],
        "different kinds of quantity (mass to length, time to speed, data to mass)": [
            "5 kg in meters =", "5 days in mph =", "7 bits in kg ="],
        "ambiguous units: kilobyte (1000 or 1024?), short or long ton, calendar year and month, "
        "C and F without degree signs": [
            "3 KB in bytes =", "2 tons in kg =", "1 year in days =", "3 months in days =",
            "100 C in F ="],
        "not asked: no '=' or connector at the end, or the answer is already there": [
            "5 km in miles", "5 km in miles = 3.1", "5 km in =", "5 km in miles ==",
            "5 km or miles ="],
        "a unit it does not know": ["5 km in parsecs =", "5 furlongs in meters ="],
        "impossible: below absolute zero": ["-500 °C in K ="],
        "a malformed number": ["1,00 m in cm ="],
        "a request that is not a conversion": ["Convert the file to PDF", "Convert 5 km",
                                               "Convert to metric"],
        "a count across kinds, or of something that is not a unit": [
            "How many miles in a kilogram?", "How many people in a mile?",
            "How many feet?", "How many degrees in a circle?"],
    }
    write_suite(rows, declines)


if __name__ == "__main__":
    main()
