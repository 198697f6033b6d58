#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes a man page (roff) from a program's --help output, deterministically.

Usage: help2roff.py PROGRAM NAME VERSION OUT.1

The text of `PROGRAM --help` is the source: ssmd's comes from its option
table (daemon/src/config.c), the clients' from their usage text, so the man
pages cannot drift from --help.  Recognised layout (what the four programs
print): a "Usage: NAME ARGS" line, description lines, indented items
("  -x, --long ARG   text" with continuation lines indented further), and
headings ("Options:", "CMD: ...", "MODEL FILES: ...").

NAME is "PROGRAM \\- " and the first line after Usage (the program's one-line
summary, which must end with a period).  The headings "Environment:",
"Files:" and "Exit status:" start sections of items ("  TERM   text", long
terms alone on their line with the text below), which become ENVIRONMENT,
FILES and EXIT STATUS: each program keeps that data next to its options.
In running text, option names and negative numbers get real minus signs
(\\-), a "(default: X)" never breaks before its value, and nothing is
hyphenated (.nh: paths, option names and numbers stay whole).
"""
import re
import subprocess
import sys

ARG = r"(?:[A-Z][A-Z0-9_]*|[\w.-]+(?:\|[\w.-]+)+)"
ITEM = re.compile(r"^( {2,6})(-\w, )?(--[\w-]+)( " + ARG + r")?(?: +(.*))?$")
CMD_ITEM = re.compile(r"^  ([a-z][\w-]*(?: +--[\w-]+ [A-Z]+)*)(?: {2,}| )(\S.*)$")
HEADING = re.compile(r"^([A-Z][A-Za-z ]+):(?: (.*))?$")
# sections of "  TERM   text" items after their heading line
ITEM_SECTIONS = {"Environment": "ENVIRONMENT", "Files": "FILES", "Exit status": "EXIT STATUS"}
SECTION_ITEM = re.compile(r"^  (\S+)(?: {2,}(\S.*))?$")
# an option name (-x, --long-name) or a negative number in running text, and
# a lone '-' in quotes (the standard input/output argument)
DASHED = re.compile(r"(?<![\w-])--?[A-Za-z0-9][\w.-]*|(?<=['\"])-(?=['\"])")


def esc(text):
    text = text.replace("\\", "\\e")
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def opt(text):
    return esc(text).replace("-", "\\-")


def words(text):
    """Running text: esc() plus minus signs for option names and negative
    numbers ("-200", "--input-gain-db"), and an unbreakable space after
    "default:" so the value stays with its label."""
    out = DASHED.sub(lambda m: m.group(0).replace("-", "\\-"), esc(text))
    return out.replace("(default: ", "(default:\\ ")


def convert(help_text, name, version):
    lines = help_text.rstrip("\n").split("\n")
    # .nh: no hyphenation, so paths, option names and numbers are never split
    out = ['.TH %s 1 "" "%s %s" "User Commands"' % (name.upper(), name, version), ".nh"]
    usage = lines[0]
    m = re.match(r"^Usage: (\S+) ?(.*)$", usage)
    if not m:
        raise SystemExit("help2roff: %s: first line is not 'Usage: ...': %r" % (name, usage))
    body = lines[1:]
    # NAME: the one-line summary right after the Usage line
    summary = body[0].strip() if body else ""
    if not summary.endswith(".") or summary.startswith(("-", " ")):
        raise SystemExit("help2roff: %s: the line after 'Usage:' is not a one-line summary ending "
                         "in '.': %r" % (name, summary))
    summary = summary[:-1]
    out += [".SH NAME", "%s \\- %s" % (opt(name), words(summary[0].lower() + summary[1:]))]
    out += [".SH SYNOPSIS", ".B %s" % opt(name), words(m.group(2))]
    out += [".SH DESCRIPTION"]
    in_items = False
    section = None  # a heading of ITEM_SECTIONS: "  TERM  text" items
    for line in body:
        if not line.strip():
            out.append(".PP")
            in_items = False
            continue
        h = HEADING.match(line)
        if h and not line.startswith(" "):
            section = h.group(1) if h.group(1) in ITEM_SECTIONS else None
            out.append(".SH %s" % esc(ITEM_SECTIONS.get(h.group(1), h.group(1).upper())))
            if h.group(2):
                out.append(words(h.group(2)))
            in_items = h.group(1) in ("Options", "CMD")
            continue
        if section:
            si = SECTION_ITEM.match(line)
            if si:
                out += [".TP", "\\fB%s\\fR" % opt(si.group(1))]
                if si.group(2):
                    out.append(words(si.group(2)))
            else:  # the text of a long term, or a continuation
                out.append(words(line.strip()))
            continue
        mi = ITEM.match(line)
        if mi and len(mi.group(1)) <= 6:
            if not in_items:
                out.append(".SH OPTIONS")
            term = (mi.group(2) or "") + mi.group(3)
            arg = mi.group(4) or ""
            out += [".TP", "\\fB%s\\fR%s" % (opt(term), ("\\fI" + esc(arg) + "\\fR") if arg else "")]
            if mi.group(5):
                out.append(words(mi.group(5)))
            in_items = True
            continue
        mc = CMD_ITEM.match(line) if in_items else None
        if mc and not line.startswith("   "):
            out += [".TP", "\\fB%s\\fR" % opt(" ".join(mc.group(1).split())), words(mc.group(2))]
            continue
        if line.startswith("  ") and in_items:
            out.append(words(line.strip()))  # continuation of the item above
            continue
        if line.startswith("  "):
            out += [".RS", ".nf", words(line.strip()), ".fi", ".RE"]
            continue
        out.append(words(line.strip()))
    # collapse repeated paragraph marks
    final = []
    for l in out:
        if l == ".PP" and final and final[-1] in (".PP",) or (l == ".PP" and final and final[-1].startswith(".SH")):
            continue
        final.append(l)
    while final and final[-1] == ".PP":
        final.pop()
    return "\n".join(final) + "\n"


def main():
    if len(sys.argv) != 5:
        raise SystemExit("usage: help2roff.py PROGRAM NAME VERSION OUT.1")
    prog, name, version, out = sys.argv[1:]
    text = subprocess.run([prog, "--help"], check=True, capture_output=True, text=True,
                          env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"}).stdout
    with open(out, "w") as f:
        f.write(convert(text, name, version))


if __name__ == "__main__":
    main()
