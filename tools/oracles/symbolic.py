#!/usr/bin/env python3
"""Independent oracle for the symbolic expert (experts/symbolic.cpp): questions built from random
polynomials, products, rational functions, radicals, equations and systems, with the expected
answers computed by SymPy (never by parsing the text the expert reads). The expert's answers are
compared as values (tests/test_experts.cpp parses both sides: the expert and SymPy may write the
same value differently). Writes tests/data/experts/symbolic.tsv (tools/oracles/suite.py format).

  python3 tools/oracles/symbolic.py > tests/data/experts/symbolic.tsv
"""
import random

import sympy as sp

from suite import write_suite

x, y, z = sp.symbols("x y z")


def text(e):
    """An expression as people type it: ^ for powers, implicit products after numbers."""
    s = sp.sstr(e).replace("**", "^")
    return s


def answer(e):
    return sp.sstr(e).replace("**", "^")


def poly(r, var=x, deg=None):
    deg = deg if deg is not None else r.randrange(1, 5)
    while True:
        coeffs = [r.randrange(-9, 10) for _ in range(deg + 1)]
        if coeffs[0] != 0:
            return sum(c * var ** (deg - i) for i, c in enumerate(coeffs))


def main():
    r = random.Random(20261130)
    rows = [
        ("The derivative of 3x^2 + 2x is", "6*x + 2"),
        ("d/dx sin(x)^2 =", answer(sp.diff(sp.sin(x) ** 2, x))),
        ("Expand (x+1)^3:", answer(sp.expand((x + 1) ** 3))),
        ("Simplify (x^2 - 1)/(x - 1):", "x + 1"),
        ("sqrt(8) =", "2*sqrt(2)"),
        ("Solve x^2 - 5x + 6 = 0:", "x = 2 or x = 3"),
        ("Solve 2x + 3y = 5, x - y = 0:", "x = 1, y = 1"),
        ("The integral of x^2 from 0 to 3 is", "9"),
        ("∫ 3x^2 dx =", "x^3 + C"),
        ("The limit of (x^2 - 1)/(x - 1) as x approaches 1 is", "2"),
        ("d/dx x**3 =", "3*x^2"),
        ("The derivative of x*y with respect to y is", "x"),
        ("The derivative of exp(x) is", "exp(x)"),
        ("The derivative of ln(x) is", "1/x"),
        ("Expand (x+1)(x-1):", "x^2 - 1"),
        ("Simplify 1.5x + 0.5x:", "2*x"),
        ("Simplify sqrt(50):", "5*sqrt(2)"),
        ("(1 + sqrt(2))^2 =", answer(sp.expand((1 + sp.sqrt(2)) ** 2))),
        ("Solve x^2 - 2 = 0:", "x = -sqrt(2) or x = sqrt(2)"),
        ("Solve x^2 - 6x + 9 = 0 for x:", "x = 3"),
        # A negative exponent binds to its number only ("2^-1(x+1)" is (x+1)/2; GiNaC read the
        # product after it into the exponent: found by fuzzing).
        ("Expand 2^-1(x + 1):", answer(sp.expand((x + 1) / 2))),
        ("Expand (x + 1)^2(x + 2)^-1(x + 2):", answer(sp.expand((x + 1) ** 2))),
        ("Expand (x+1)^(2)(x-1):", answer(sp.expand((x + 1) ** 2 * (x - 1)))),
    ]
    seen = set(t for t, _ in rows)

    def add(t, want):
        if t not in seen:
            seen.add(t)
            rows.append((t, want))

    # Derivatives of polynomials and of elementary compositions.
    for _ in range(30):
        p = poly(r)
        form = r.choice(["The derivative of {} is", "d/dx ({}) =", "Differentiate {}:",
                         "The derivative of {} with respect to x is"])
        add(form.format(text(p)), answer(sp.expand(sp.diff(p, x))))
    for f in [sp.sin(x), sp.cos(x), sp.exp(x), sp.log(x), sp.sqrt(x)]:
        for p in [poly(r, deg=1), poly(r, deg=2)]:
            e = f.subs(x, p)
            add(f"The derivative of {text(e)} is", answer(sp.diff(e, x)))
            e2 = p * f
            add(f"d/dx ({text(e2)}) =", answer(sp.diff(e2, x)))
    # Expansions of products of binomials and powers.
    for _ in range(25):
        a, b, c = (r.randrange(-6, 7) for _ in range(3))
        n = r.randrange(2, 5)
        e = (x + a) ** n * (r.randrange(1, 4) * x + b) if r.random() < 0.5 else (x + a) * (x + b) * (x + c)
        add(f"Expand {text(e)}:", answer(sp.expand(e)))
    # Rational functions that cancel.
    for _ in range(20):
        a, b, c = (r.randrange(-6, 7) for _ in range(3))
        num, den = sp.expand((x - a) * (x - b)), x - a
        add(f"Simplify ({text(num)})/({text(den)}):", answer(sp.cancel(num / den)))
        if a != b:
            add(f"The limit of ({text(num)})/({text(den)}) as x approaches {a} is",
                answer(sp.limit(num / den, x, a)))
    # Radicals.
    for n in sorted(set(r.randrange(2, 400) for _ in range(40))):
        v = sp.sqrt(n)
        if v.is_Integer or v == sp.sqrt(n).func(n, sp.Rational(1, 2), evaluate=False):
            continue
        if sp.sstr(v) == f"sqrt({n})":
            continue  # nothing to reduce: declined, below
        add(f"sqrt({n}) =", answer(v))
    # Linear equations and quadratics.
    for _ in range(20):
        a, b, c = r.randrange(1, 10), r.randrange(-20, 21), r.randrange(-20, 21)
        add(f"Solve {a}x + {b} = {c}:".replace("+ -", "- "), f"x = {answer(sp.Rational(c - b, a))}")
    for _ in range(20):
        p, q = r.randrange(-9, 10), r.randrange(-9, 10)
        if p == q:
            continue
        e = sp.expand((x - p) * (x - q))
        add(f"Solve {text(e)} = 0:", " or ".join(f"x = {v}" for v in sorted({p, q})))
    for _ in range(10):
        c = r.randrange(2, 30)
        e = x ** 2 - c
        roots = sorted(sp.solve(e, x), key=lambda v: float(v))
        add(f"Solve {text(e)} = 0:", " or ".join(f"x = {answer(v)}" for v in roots))
    # Linear systems with one solution.
    for _ in range(15):
        while True:
            m = sp.Matrix(2, 2, [r.randrange(-5, 6) for _ in range(4)])
            if m.det() != 0:
                break
        sol = [r.randrange(-5, 6) for _ in range(2)]
        rhs = m * sp.Matrix(sol)
        eqs = [f"{text(m[i, 0] * x + m[i, 1] * y)} = {rhs[i]}" for i in range(2)]
        add("Solve " + ", ".join(eqs) + ":", f"x = {sol[0]}, y = {sol[1]}")
    # Integrals of polynomials.
    for _ in range(15):
        p = poly(r)
        add(f"∫ {text(p)} dx =", answer(sp.integrate(p, x)) + " + C")
        a, b = sorted((r.randrange(-3, 4), r.randrange(-3, 4)))
        add(f"The integral of {text(p)} from {a} to {b} is", answer(sp.integrate(p, (x, a, b))))

    declines = {
        "complex roots: not solved": ["Solve x^2 + 1 = 0:", "Solve x^2 + 2x + 5 = 0:"],
        "an equation it does not solve (degree 3 and above)": ["Solve x^3 - x = 0:",
                                                              "Solve x^4 = 16:"],
        "several variables and none named: ambiguous": ["The derivative of x*y is",
                                                        "∫ x*y dx dy ="],
        "a hedge: the text asks for an estimate": ["approximately the derivative of x^2 is"],
        "outside the grammar: e^x (write exp(x)), juxtaposed letters, words": [
            "The derivative of e^x is", "The derivative of xy is", "Simplify foo(x):",
            "The derivative of sin x is"],
        "an integral of a function that is not a polynomial": ["The integral of sin(x) is",
                                                                "∫ exp(x) dx ="],
        "past the budget: a huge expansion or exponent, a rational function of more than two "
        "variables": ["Expand (x+y+z+w+v)^32:", "Expand (x+1)^100:",
                      "Simplify (x*w + v)^28/(x + y + z):"],
        "a limit at a pole: not taken by substitution": [
            "The limit of 1/x as x approaches 0 is", "The limit of (x+1)/(x-1) as x approaches 1 is"],
        "nothing to compute: already in lowest terms, or pure arithmetic (the calculator's)": [
            "sqrt(2) =", "1/3 + 1/6 =", "127 * 89 ="],
        "a system without a unique solution": ["Solve x + y = 1, 2x + 2y = 2:",
                                               "Solve x + y = 1, x + y = 2:"],
        "not a question it answers": ["The capital of France is", "x = 5", "Solve:"],
    }
    write_suite(rows, declines)


if __name__ == "__main__":
    main()
