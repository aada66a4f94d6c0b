#!/usr/bin/env python3
"""Independent oracle for the calculator expert (experts/calculator.cpp): random expression
trees rendered as text the way people write them (×, ÷, ^, %, "of", thousands separators,
parentheses, unary minus) and evaluated here with Python's exact Fraction arithmetic on the tree,
never by parsing the text; the result formatted by this file's own implementation of the
documented output format (experts/exact.h) using the decimal module. Plus cases that must
decline. Writes tests/data/experts/calculator.tsv: text <TAB> expected output or DECLINE.

  python3 tools/oracles/calculator.py > tests/data/experts/calculator.tsv
"""
import random
import re
from decimal import Decimal, ROUND_HALF_EVEN, getcontext
from fractions import Fraction

from suite import write_suite

getcontext().prec = 2000


def rounded(x: Decimal) -> str:
    """A non-negative value to 15 significant digits (at least 3 decimals), half to even,
    trailing zeros dropped."""
    places = max(14 - x.adjusted(), 3)
    s = format(x.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN), "f")
    return s.rstrip("0").rstrip(".") if "." in s else s


def signed(neg: bool, s: str) -> str:
    return "-" + s if neg and s != "0" else s


def fmt(q: Fraction) -> str:
    """Integers in full; terminating decimals exactly; else rounded()."""
    a = abs(q)
    if a.denominator == 1:
        return signed(q < 0, str(a.numerator))
    d = a.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    x = Decimal(a.numerator) / Decimal(a.denominator)
    return signed(q < 0, format(x, "f") if d == 1 else rounded(x))


def fmt_real(v) -> str:
    """An irrational value (given to 100 digits) as the calculator writes one: rounded()."""
    x = Decimal(v)
    return signed(x < 0, rounded(abs(x)))


def decimal_context():
    """100 significant digits: rounding to 15 from these is the correctly rounded value except at
    exact ties, which the suite's irrational cases never are."""
    from decimal import Context
    return Context(prec=100)


def cbrt(ctx, v):
    root = ctx.power(abs(v), ctx.divide(Decimal(1), Decimal(3)))
    return -root if v < 0 else root


def is_power(n, k):
    r = round(n ** (1 / k))
    return any((r + d) ** k == n for d in (-1, 0, 1))


def number(r):
    kind = r.randrange(5)
    if kind == 0:
        v = r.randrange(0, 10)
        return str(v), Fraction(v)
    if kind == 1:
        v = r.randrange(10, 1000)
        return str(v), Fraction(v)
    if kind == 2:
        v = r.randrange(1000, 10**7)
        return (f"{v:,}" if r.random() < 0.5 else str(v)), Fraction(v)
    if kind == 3:
        i, f = r.randrange(0, 100), r.randrange(1, 100)
        t = f"{i}.{f:02d}" if r.random() < 0.5 else f"{i}.{f}"
        return t, Fraction(t)
    v = r.randrange(10**9, 10**15)
    return str(v), Fraction(v)


def expr(r, depth):
    """(text, value, precedence, bare) with precedence 3 = atom, 2 = product, 1 = sum; bare: the
    node is a percentage on its own ("15%"). None when the expression is one the calculator must
    decline (a bare percentage added or subtracted: ambiguous between conventions)."""
    if depth == 0 or r.random() < 0.3:
        return (*number(r), 3, False)
    op = r.choice(["+", "-", "*", "×", "/", "÷", "^", "pct", "of"])
    if op == "^":
        t, v, p, _ = expr(r, 0)
        n = r.randrange(-3, 9) if v != 0 else r.randrange(1, 5)
        return f"{t}^{n}" if n >= 0 else f"{t}^({n})", v ** n, 3, False
    if op == "pct":
        t, v, _, _ = expr(r, 0)
        return f"{t}%", v / 100, 3, True
    a, b = expr(r, 0 if op == "of" else depth - 1), expr(r, depth - 1)
    if a is None or b is None:
        return None
    (t1, v1, p1, bare1), (t2, v2, p2, bare2) = a, b
    if op == "of":
        t2 = t2 if p2 == 3 else f"({t2})"
        return f"{t1}% of {t2}", v1 / 100 * v2, 2, False
    if op in "+-":
        if bare1 or bare2:
            return None
        if p2 < 2 or (op == "-" and p2 == 1) or p2 == 1:
            t2 = f"({t2})"
        val = v1 + v2 if op == "+" else v1 - v2
        sp = " " if r.random() < 0.8 else ""
        text = f"{t1}{sp}{op}{sp}{t2}"
        # Integers of 3+ digits glued by a hyphen, or three glued integers, read as codes
        # (phone numbers, ids, dates) and are declined: written with spaces here.
        if op == "-" and (re.search(r"(^|[^\d.,])\d{3,}-\d{3,}($|[^\d.,])", text) or
                          re.search(r"(^|[^\d.,])\d+-\d+-\d+($|[^\d.,])", text)):
            text = f"{t1} {op} {t2}"
        return text, val, 1, False
    t1 = t1 if p1 >= 2 else f"({t1})"
    t2 = t2 if p2 == 3 else f"({t2})"
    sp = " " if r.random() < 0.8 else ""
    if op in ("*", "×"):
        return f"{t1}{sp}{op}{sp}{t2}", v1 * v2, 2, False
    if v2 == 0:
        return f"{t1}{sp}*{sp}{t2}", v1 * v2, 2, False
    return f"{t1}{sp}{op}{sp}{t2}", v1 / v2, 2, False


def main():
    r = random.Random(20261123)
    rows = [("127 * 89 = ", "11303"), ("What is 127 * 89 =", "11303"), ("2^100 =", str(2**100)),
            ("-2^2 =", "-4"), ("(-2)^2 =", "4"),
            ("15% of 200 =", "30"), ("15% * 200 =", "30"), ("15% of 200 + 5 =", "35"),
            ("(15%) + 1 =", "1.15"), ("1000-1 =", "999"), ("12-5 =", "7"), ("0.5 * 4 =", "2"),
            ("0 + 7 =", "7"), ("555 - 199 =", "356"),
            # Questions, verbs and operator words.
            ("What is 127 * 89?", "11303"), ("What's 7 times 8?", "56"), ("what is 5 plus 3?", "8"),
            ("How much is 10 divided by 4?", "2.5"), ("Calculate 2 to the power of 10?", "1024"),
            ("7 x 8 =", "56"), ("12 minus 5 =", "7"), ("3 multiplied by 4 =", "12"),
            ("9 squared =", "81"), ("2 cubed =", "8"), ("2**10 =", "1024"), ("5! =", "120"),
            ("10! =", "3628800"), ("0! =", "1"), ("1.5e3 + 1 =", "1501"),
            ("2E-4 * 10000 =", "2"), ("6.02e23 / 1e23 =", "6.02"), ("127 * 89 is", "11303"),
            ("So 15% of 200 equals", "30"), ("The product 12 × 12 is equal to", "144"),
            ("Hello! 2 + 2 =", "4"), ("What is 2 + 2? ", "4"), ("10 over 4 =", "2.5"), ("1/3 =", fmt(Fraction(1, 3))), ("2/3 =", fmt(Fraction(2, 3))),
            ("0.1 + 0.2 =", "0.3"), ("1,234,567 × 3 =", "3703701"), ("10 ÷ 4 =", "2.5"),
            ("100000000000000000000 / 3 =", fmt(Fraction(10**20, 3))), ("2^-3 =", "0.125"),
            ("Compute: 3 + 4 * 5 =", "23"), ("-(3 - 5) =", "2"), ("12 − 5 =", "7")]
    seen = set(t for t, _ in rows)
    while len(rows) < 140:
        e = expr(r, r.randrange(1, 4))
        if e is None:
            continue
        t, v, _, _ = e
        if not any(c in t for c in "+-*×/÷^%") or t in seen:
            continue
        if abs(v.numerator) > 10**60 or v.denominator > 10**60:
            continue
        if r.random() < 0.25:  # operators in words
            t = (t.replace(" + ", " plus ").replace(" - ", " minus ").replace(" * ", " times ")
                 .replace(" × ", " x ").replace(" / ", " divided by "))
        style = r.random()
        if style < 0.6:
            lead = r.choice(["", "", "So ", "What is ", "Compute ", "The result: "])
            text = lead + t + r.choice([" = ", " =", "="])
        elif style < 0.8:
            text = r.choice(["What is ", "What's ", "How much is ", "Calculate "]) + t + "?"
        else:
            text = r.choice(["", "So ", "The total "]) + t + r.choice([" is", " equals", " is equal to"])
        seen.add(t)
        rows.append((text, fmt(v)))
    # Irrational values (sqrt, cbrt, exp, ln, log10, log2, non-integer powers), rounded once to
    # 15 significant digits from 100-digit values of Python's decimal module (correctly rounded
    # there); exact ones (perfect roots, exact logarithms) stay exact.
    D = decimal_context()
    fns = {"sqrt": lambda v: D.sqrt(v), "cbrt": lambda v: cbrt(D, v), "exp": lambda v: D.exp(v),
           "ln": lambda v: D.ln(v), "log10": lambda v: D.log10(v),
           "log2": lambda v: D.divide(D.ln(v), D.ln(Decimal(2)))}
    real_rows = [("sqrt(2) =", "sqrt", "2"), ("What is sqrt(50)?", "sqrt", "50"),
                 ("exp(1) =", "exp", "1"), ("ln(2) =", "ln", "2"), ("log10(2) =", "log10", "2"),
                 ("log2(10) =", "log2", "10"), ("cbrt(2) =", "cbrt", "2")]
    for text, f, arg in real_rows:
        rows.append((text, fmt_real(fns[f](Decimal(arg)))))
    rows += [("sqrt(16) =", "4"), ("8^(1/3) =", "2"), ("cbrt(-27) =", "-3"), ("exp(0) =", "1"),
             ("ln(1) =", "0"), ("log10(1000) =", "3"), ("log2(1024) =", "10"),
             ("log10(0.001) =", "-3"), ("sqrt(1e20) =", "10000000000"), ("sqrt(9/4) =", "1.5"),
             ("2^0.5 =", fmt_real(D.sqrt(Decimal(2)))),
             ("10^-0.5 =", fmt_real(D.divide(Decimal(1), D.sqrt(Decimal(10))))),
             ("1/3 + sqrt(2) =", fmt_real(D.add(D.divide(Decimal(1), Decimal(3)), D.sqrt(Decimal(2))))),
             # The smallest and largest irrational magnitudes printed: above 10^-32, below 10^32.
             ("2^0.5 / 10^32 =", fmt_real(D.scaleb(D.sqrt(Decimal(2)), -32))),
             ("sqrt(2) * 10^31 =", fmt_real(D.scaleb(D.sqrt(Decimal(2)), 31)))]
    for _ in range(25):
        f = r.choice(sorted(fns))
        n = r.randrange(2, 5000)
        v = fns[f](Decimal(n))
        if Fraction(v).denominator == 1 or (f in ("sqrt", "cbrt") and is_power(n, 2 if f == "sqrt" else 3)):
            continue
        a = r.randrange(1, 100)
        form = r.choice(["{f}({n}) =", "{a} * {f}({n}) =", "{f}({n}) + {a} =", "What is {f}({n})?"])
        val = D.multiply(v, a) if form.startswith("{a}") else D.add(v, a) if "+" in form else v
        rows.append((form.format(f=f, n=n, a=a), fmt_real(val)))
    # Amounts of money: one currency, computed with fractions and written to the cent (cents
    # shown when an operand has them or the value does; commas when an operand has them; values
    # between cents rounded to the nearest, exact half cents declined).
    def money(symbol, v, cents, grouped):
        c = v * 100
        q, rem = divmod(c.numerator, c.denominator)
        assert 2 * rem != c.denominator
        q += 2 * rem > c.denominator
        neg, q = q < 0, abs(q)
        whole, frac = divmod(q, 100)
        digits = f"{whole:,}" if grouped else str(whole)
        show = cents or frac != 0 or c.denominator != 1
        return ("-" if neg else "") + symbol + digits + (f".{frac:02d}" if show else "")
    F = Fraction
    rows += [("$1,200 + $350 =", money("$", F(1550), False, True)),
             ("What is $45.50 * 3?", money("$", F("45.50") * 3, True, False)),
             ("$20 / 4 =", money("$", F(5), False, False)), ("€15 + €5 =", money("€", F(20), False, False)),
             ("£10 - £2.50 =", money("£", F("7.5"), True, False)),
             ("What is 15% of $200?", money("$", F(30), False, False)),
             ("15% of $200 is", money("$", F(30), False, False)),
             ("-$5 + $1 =", money("$", F(-4), False, False)),
             ("$1,000,000 / 12 =", money("$", F(1000000, 12), False, True)),
             ("$100 / 3 =", money("$", F(100, 3), False, False)), ("$100 / $20 =", "5"),
             ("3 * $4.10 =", money("$", 3 * F("4.10"), True, False)),
             ("$19.99 + $5.01 =", money("$", F("25"), True, False)),
             ("The total: $12 + $8 =", money("$", F(20), False, False))]
    for _ in range(15):
        a, b = F(r.randrange(1, 10**6), r.choice([1, 100])), F(r.randrange(1, 10**5), r.choice([1, 100]))
        op = r.choice(["+", "-", "*", "/"])
        grouped = r.random() < 0.5

        def amount(x):
            c = int(x * 100)
            text = f"{c // 100}.{c % 100:02d}" if x.denominator != 1 else str(x.numerator)
            if grouped:
                whole, _, frac = text.partition(".")
                text = f"{int(whole):,}" + ("." + frac if frac else "")
            return "$" + text
        if op in "+-":
            text, v = f"{amount(a)} {op} {amount(b)} =", a + b if op == "+" else a - b
        else:
            n = r.randrange(2, 13)
            text, v = f"{amount(a)} {'*' if op == '*' else '/'} {n} =", a * n if op == "*" else a / n
        c = v * 100
        if 2 * (c.numerator % c.denominator) == c.denominator:
            continue
        cents = a.denominator != 1 or (op in "+-" and b.denominator != 1)
        rows.append((text, money("$", v, cents, "," in text)))
    # Cases the calculator must decline, by reason (the third column of the suite).
    declines = {
        "no operator: a number is not a calculation": [
            "room 127 =", "127 =", "Room 127 is", "What is 127?", "call 555 1234 =", "12 34 ="],
        "a hedge: the text asks for an estimate, not an exact value": [
            "approximately 3 × 4 =", "about 12 + 7 =", "roughly 100 / 3 =", "~ 3 * 4 =",
            "approximately 3 times 4 is"],
        "a variable or a function: not plain arithmetic": [
            "x = 5", "x = ", "x+3 =", "2x + 3 =", "f(2) =", "x times 3 =", "7 x8 ="],
        "glued to a symbol or word: part of something else": ["Version 2.4.1 + 1 =", "US$5 + 3 ="],
        "money whose units do not agree: an amount plus a number, two currencies, an amount "
        "times an amount or in a power or function, a currency apart from its number, half a cent": [
            "$5 + 3 =", "5 + $3 =", "$5 + €3 =", "$3 * $4 =", "$2^2 =", "sqrt($4) =", "$ 5 + 3 =",
            "$10 + 5% =", "$0.125 * 1 =", "$1e3 + $1 =", "4 / $2 ="],
        "undefined: division by zero, a factorial of a non-integer": [
            "1 / 0 =", "5 % 0 =", "0^-1 =", "2.5! ="],
        "too large: the result would exceed 100,000 bits": ["2^100001 =", "1001! ="],
        "not asked: no '=' or verb or question at the end, or the answer is already there": [
            "127 * 89", "127 * 89 = 11303", "", "=", "The answer is"],
        "a comparison, not an equation": ["a == b", "3 <= 4", "5!="],
        "does not parse": ["(1 + 2 =", "1 + 2) =", "1 + =", "* 3 =", "1.5e3e2 =", "7 x =",
                           "times 8 =", "2 to the power 10 ="],
        "'%' before a signed operand: a modulo by -3, or 7 percent minus 3?": [
            "7 % -3 =", "7 % +3 ="],
        "'%' between operands: modulo, or a percentage times a number?": [
            "7 % 3 =", "-7 % 3 =", "15 % 4 =", "15%4 =", "10 % (3) =", "3.5 % 2 ="],
        "a bare percentage added or subtracted: 230 on a shop calculator, 200.15 in arithmetic": [
            "200 + 15% =", "100 - 10% =", "50 + 50% =", "15% + 5% =", "2 + 3 * 4 - 10% =",
            "(200 + 15%) * 2 =", "-15% + 1 ="],
        "digits that are a code: a phone number, id, zip code or date": [
            "call 555-0199 =", "555-0199 =", "Call 555-1234 =", "zip 12345-6789 =", "2024-01-15 =",
            "2024-1-15 =", "ISBN 978-3-16 =", "007 + 1 =", "0199 =", "agent 007 * 2 ="],
        "an ambiguous function: log of which base? sin in degrees or radians?": [
            "log(100) =", "sin(30) =", "cos(0) =", "tan(45) ="],
        "outside the real numbers: a negative square root or logarithm, a real or complex root of "
        "a negative number": ["sqrt(-1) =", "ln(0) =", "log10(-5) =", "(-8)^(1/3) ="],
        "an irrational value too near a rounding boundary to be certain at 512 bits, or of "
        "10^32 or more, or below 10^-32": [
            "sqrt(2) * sqrt(2) =", "2^0.5 * 2^0.5 =", "exp(1000) =", "exp(-1000) =",
            "2^0.5 / 10^40 =", "sqrt(2) * 10^40 =", "6666 / 66666666666^666666666666^0.4 ="],
        "a question that does not ask for the value": [
            "What is the capital of France?", "Who is 3 + 4?", "Why is 3 + 4?", "3 + 4?",
            "Is 3 + 4?"],
    }
    write_suite(rows, declines)


if __name__ == "__main__":
    main()
