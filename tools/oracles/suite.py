"""The format of the expert suites (tests/data/experts/NAME.tsv) the oracles write: one case per
line, `text <TAB> expected output`, or `text <TAB> DECLINE <TAB> why the expert must decline`. A
newline inside a text is written as the two characters \\n."""


def write_suite(rows, declines):
    """rows: (text, expected output) pairs; declines: {reason: [texts]}."""
    for t, want in rows:
        assert "\t" not in t and "\n" not in t, t
        print(f"{t}\t{want}")
    for reason, texts in declines.items():
        assert reason and "\t" not in reason
        for t in texts:
            assert "\t" not in t and "\n" not in t, t
            print(f"{t}\tDECLINE\t{reason}")
