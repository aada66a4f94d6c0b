#!/usr/bin/env python3
"""Independent oracle for the finance expert (experts/finance.cpp): paragraphs rendered here
from chosen values (the values are never read back from the text), the answer computed with
Fraction (DSCR = NOI / annual debt service; LTV = loan / value x 100; cap rate = NOI / price x 100;
debt yield = NOI / loan x 100; monthly annuity payment P r / (1 - (1 + r)^-n), r = rate / 12,
rounded to the cent half away from zero) and formatted by tools/oracles/calculator.py's formatter.
Plus cases that must decline.

  python3 tools/oracles/finance.py > tests/data/experts/finance.tsv
"""
import random
import sys
from fractions import Fraction as F
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from calculator import fmt  # noqa: E402
from suite import write_suite  # noqa: E402


def money_text(r, v):
    """A way people write the amount v (a whole number of dollars)."""
    style = r.randrange(5)
    if style == 0 and v % 1000 == 0:
        return f"${v // 1000}k"
    if style == 1 and v % 100000 == 0:
        return f"${F(v, 10**6).numerator / F(v, 10**6).denominator:g}M"
    if style == 2 and v % 100000 == 0:
        return f"${F(v, 10**6).numerator / F(v, 10**6).denominator:g} million"
    if style == 3:
        return f"{v:,}"
    return f"${v:,}"


def amount(r, lo, hi, round_to=1000):
    return r.randrange(lo // round_to, hi // round_to) * round_to


def cents(q):
    """Round half away from zero to 2 places, written with thousands separators."""
    n = abs(q) * 100
    i = n.numerator // n.denominator
    if (n - i) * 2 >= 1:
        i += 1
    s = f"{i // 100:,}.{i % 100:02d}"
    return ("-" if q < 0 and i else "") + "$" + s


def payment(p, rate, months):
    if rate == 0:
        return F(p, months)
    r = F(rate) / 1200
    g = (1 + r) ** months
    return p * r * g / (g - 1)


def dscr(r):
    noi, ds = amount(r, 100000, 5000000), amount(r, 50000, 4000000)
    monthly = r.random() < 0.2
    ds_t = money_text(r, ds // 12 if monthly else ds)
    if monthly:
        ds = ds // 12 * 12
    ds_label = "monthly debt service" if monthly else r.choice(["annual debt service", "debt service"])
    t = r.choice([f"NOI is {money_text(r, noi)} and {ds_label} is {ds_t}, so the DSCR is",
                  f"The property has an NOI of {money_text(r, noi)}. The {ds_label} is {ds_t}. DSCR =",
                  f"Net operating income: {money_text(r, noi)}; {ds_label}: {ds_t}. The debt service coverage ratio is",
                  f"With {money_text(r, noi)} NOI and {ds_t} {ds_label}, the DSCR comes to"])
    return t, fmt(F(noi, ds))


def ltv(r):
    loan, value = amount(r, 100000, 8000000), amount(r, 200000, 12000000)
    t = r.choice([f"The loan is {money_text(r, loan)} and the property value is {money_text(r, value)}. LTV =",
                  f"A {money_text(r, loan)} loan on a property valued at {money_text(r, value)} gives a loan-to-value ratio of:",
                  f"Loan amount {money_text(r, loan)}, appraised value {money_text(r, value)}, so the LTV is"])
    return t, fmt(F(loan, value) * 100) + "%"


def cap_rate(r):
    noi, price = amount(r, 50000, 2000000), amount(r, 500000, 30000000)
    t = r.choice([f"NOI of {money_text(r, noi)} and a purchase price of {money_text(r, price)}: the cap rate is",
                  f"The building sold for a price of {money_text(r, price)} with net operating income of {money_text(r, noi)}. Cap rate =",
                  f"Price {money_text(r, price)}, NOI {money_text(r, noi)}. The capitalization rate is"])
    return t, fmt(F(noi, price) * 100) + "%"


def debt_yield(r):
    noi, loan = amount(r, 50000, 2000000), amount(r, 500000, 20000000)
    t = r.choice([f"NOI is {money_text(r, noi)} and the loan amount is {money_text(r, loan)}. Debt yield =",
                  f"A {money_text(r, loan)} loan against {money_text(r, noi)} NOI has a debt yield of",
                  f"Loan: {money_text(r, loan)}. NOI: {money_text(r, noi)}. The debt yield is"])
    return t, fmt(F(noi, loan) * 100) + "%"


def loan_payment(r):
    p = amount(r, 10000, 2000000)
    rate = F(r.randrange(0, 1200), 100) if r.random() < 0.9 else F(0)
    rate_t = format(rate.numerator / rate.denominator, ".2f").rstrip("0").rstrip(".") + "%"
    years = r.choice([5, 10, 15, 20, 25, 30])
    term = r.choice([f"{years}-year", f"for {years} years", f"for {years * 12} months"])
    p_t = f"${p:,}"
    if term.endswith("-year"):
        t = f"A {term} {p_t} mortgage at {rate_t}: the monthly payment is"
    else:
        t = r.choice([f"Borrowing {p_t} (loan amount) at {rate_t} {term}, the monthly payment is",
                      f"Loan of {p_t} at an interest rate of {rate_t} {term}. Monthly payment =",
                      f"The principal is {p_t}, the rate is {rate_t}, {term}. The monthly mortgage payment comes to"])
    return t, cents(payment(p, rate, years * 12))


def main():
    r = random.Random(20261123)
    rows = [("NOI is $1,200,000 and annual debt service is $950,000, so the DSCR is", fmt(F(1200000, 950000))),
            ("The loan is $3,000,000 and the property value is $4,000,000. LTV =", "75%"),
            ("NOI $500k, price $10M. Cap rate:", "5%"),
            ("NOI is $1.2 million and the loan is $12 million. The debt yield is", "10%"),
            ("A $300,000 loan at 6% for 30 years. The monthly payment is", cents(payment(300000, 6, 360))),
            ("A $120,000 loan at 0% for 10 years. The monthly payment is", "$1,000.00"),
            ("Monthly debt service is $10,000 and NOI is $150,000. DSCR =", "1.25"),
            ("NOI €80,000, value €1,000,000. Cap rate =", "8%")]
    gens = [dscr, ltv, cap_rate, debt_yield, loan_payment]
    seen = set(t for t, _ in rows)
    while len(rows) < 130:
        t, want = r.choice(gens)(r)
        if t in seen:
            continue
        seen.add(t)
        rows.append((t, want))
    # The question first, its facts after "if", "when", "given", "with" or "for", up to a "?".
    rows += [
        ("What is the DSCR if NOI is $1,200,000 and debt service is $950,000?",
         fmt(F(1200000, 950000))),
        ("What's the LTV if the loan is $3,000,000 and the property value is $4,000,000?", "75%"),
        ("What is the cap rate given NOI of $500k and a price of $10M?", "5%"),
        ("What is the monthly payment for a $300,000 loan at 6% for 30 years?",
         cents(payment(300000, 6, 360))),
        ("What is the debt yield with NOI of $1.2 million and a loan of $12 million?", "10%"),
        ("So what is the debt service coverage ratio when NOI is $500,000 and annual debt service is $400,000?",
         fmt(F(500000, 400000))),
    ]
    # Compound interest: P (1 + r/n)^(n t), to the cent.
    for p_, rate, word, n, years in [(1000, 5, "annually", 1, 10), (5000, 4, "monthly", 12, 3),
                                     (250000, "3.5", "quarterly", 4, 20), (100, 12, "daily", 365, 1),
                                     (10000, 6, "semiannually", 2, 5), (1500, "4.25", "weekly", 52, 2),
                                     (1000, "5.25", "daily", 365, 100)]:  # 1.3 Mbit exact
        fv = F(p_) * (1 + F(str(rate)) / 100 / n) ** (n * years)
        lead = r.choice(["", "An investment of ", "A deposit of "])
        rows.append((f"{lead}${p_:,} at {rate}% compounded {word} for {years} years grows to",
                     cents(fv)))
    rows.append(("$1,000 at 5% interest compounded annually for 10 years is worth",
                 cents(F(1000) * F(105, 100) ** 10)))
    declines = {
        "compound interest it cannot give exactly: continuous compounding, fractional periods, "
        "hedged or missing figures": [
            "$1,000 at 5% compounded continuously for 10 years grows to",
            "$1,000 at 5% compounded monthly for 2.5 weeks grows to",
            "About $1,000 at 5% compounded annually for 10 years grows to",
            "$1,000 compounded annually for 10 years grows to"],
        "a growth (1 + r)^n past 2,000,000 bits exact: a rate of many digits over many periods": [
            "$1,000 at 5.7777777777% compounded daily for 100 years grows to",
            "A $300,000 loan at 6." + "7" * 300 + "% for 100 years. The monthly payment is"],
        "a question first without the facts it needs, or for a metric it does not compute": [
            "What is the DSCR?", "What is the IRR if NOI is $1,000,000?",
            "What is the DSCR if NOI is $1,200,000?"],
        "a question first for a payment of another period": [
            "What is the annual payment for a $300,000 loan at 6% for 30 years?"],
        "not a finance question": ["room 127 =", "approximately 3 × 4 =", "x = 5"],
        "a fact it needs is not given": [
            "The DSCR is", "NOI is $1,200,000, so the DSCR is", "The loan is $3,000,000. LTV =",
            "The value is $4,000,000. LTV =", "A $300,000 loan at 6%. The monthly payment is",
            "A $300,000 loan for 30 years. The monthly payment is", "Price $10M. Cap rate =",
            "NOI $500k. Debt yield =", "The cap rate is 5%. The loan-to-value ratio is"],
        "a hedged figure: an estimate, not a fact": [
            "NOI is about $1,200,000 and debt service is $950,000, so the DSCR is",
            "The loan is $3,000,000 and the property value is roughly $4,000,000. LTV ="],
        "undefined: a zero denominator": [
            "NOI is $1,200,000 and debt service is $0, so the DSCR is"],
        "conflicting facts: the same quantity given twice with different values": [
            "NOI is $1,200,000, NOI is $1,300,000 and debt service is $950,000. DSCR ="],
        "not asked: the answer is already there, or a metric it does not compute (IRR)": [
            "NOI is $1,200,000 and debt service is $950,000, so the DSCR is 1.26",
            "NOI is $1,200,000 and debt service is $950,000, so the IRR is"],
        "the facts are in another paragraph": [
            "NOI is $1,200,000 and debt service is $950,000.\n\nThe DSCR is"],
        "a term of fractional months": [
            "A $300,000 loan at 6% for 2.5 years. The monthly payment is"],
        "a payment of another period: only the monthly payment is computed": [
            "A $300,000 loan at 6.5% for 30 years. The annual payment is",
            "A $300,000 loan at 6.5% for 30 years. The biweekly payment is",
            "A $300,000 loan at 6.5% for 30 years. The weekly payment is",
            "A $300,000 loan at 6.5% for 30 years. The quarterly payment is",
            "A $300,000 loan at 6.5% for 30 years. The yearly payment is",
            "A $300,000 loan at 6.5% for 30 years. The total payment is",
            "A $300,000 loan at 6.5% for 30 years. The down payment is"],
    }
    write_suite([(t.replace("\n", "\\n"), w) for t, w in rows],
                {k: [t.replace("\n", "\\n") for t in v] for k, v in declines.items()})


if __name__ == "__main__":
    main()
