#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes a man page (roff) from a program's --help output, deterministically.

Usage: help2roff.py PROGRAM NAME VERSION OUT.1

The text of `PROGRAM --help` is the source: ssmd's comes from its option
table (daemon/src/config.c), the clients' from their usage text, so the man
pages cannot drift from --help.  Recognised layout (what the four programs
print): a "Usage: NAME ARGS" line, description lines, indented items
("  -x, --long ARG   text" with continuation lines indented further), and
headings ("Options:", "CMD: ...", "Exit status: ...", "MODEL FILES: ...").
"""
import re
import subprocess
import sys

ARG = r"(?:[A-Z][A-Z0-9_]*|[\w.-]+(?:\|[\w.-]+)+)"
ITEM = re.compile(r"^( {2,6})(-\w, )?(--[\w-]+)( " + ARG + r")?(?: +(.*))?$")
CMD_ITEM = re.compile(r"^  ([a-z][\w-]*(?: +--[\w-]+ [A-Z]+)*)(?: {2,}| )(\S.*)$")
HEADING = re.compile(r"^([A-Z][A-Za-z ]+):(?: (.*))?$")


def esc(text):
    text = text.replace("\\", "\\e")
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def opt(text):
    return esc(text).replace("-", "\\-")


def convert(help_text, name, version):
    lines = help_text.rstrip("\n").split("\n")
    out = ['.TH %s 1 "" "%s %s" "User Commands"' % (name.upper(), name, version)]
    usage = lines[0]
    m = re.match(r"^Usage: (\S+) ?(.*)$", usage)
    if not m:
        raise SystemExit("help2roff: %s: first line is not 'Usage: ...': %r" % (name, usage))
    body = lines[1:]
    # NAME: the first sentence of the first paragraph, up to a parenthesis
    para = []
    for line in body:
        if not line.strip():
            break
        para.append(line.strip())
    summary = re.split(r"(?<=[.:])(?: |$)", " ".join(para))[0].rstrip(".:") or name
    paren = summary.find(" (", 30)
    if paren > 0:
        summary = summary[:paren]
    out += [".SH NAME", "%s \\- %s" % (opt(name), esc(summary[0].lower() + summary[1:]))]
    out += [".SH SYNOPSIS", ".B %s" % opt(name), esc(m.group(2))]
    out += [".SH DESCRIPTION"]
    in_items = False
    cont_indent = None
    for line in body:
        if not line.strip():
            out.append(".PP" if not in_items else ".PP")
            in_items = False
            continue
        h = HEADING.match(line)
        if h and not line.startswith(" "):
            out.append(".SH %s" % esc(h.group(1).upper()))
            if h.group(2):
                out.append(esc(h.group(2)))
            in_items = h.group(1) in ("Options", "CMD")
            continue
        mi = ITEM.match(line)
        if mi and len(mi.group(1)) <= 6:
            if not in_items:
                out.append(".SH OPTIONS")
            term = (mi.group(2) or "") + mi.group(3)
            arg = mi.group(4) or ""
            out += [".TP", "\\fB%s\\fR%s" % (opt(term), ("\\fI" + esc(arg) + "\\fR") if arg else "")]
            if mi.group(5):
                out.append(esc(mi.group(5)))
            in_items = True
            continue
        mc = CMD_ITEM.match(line) if in_items else None
        if mc and not line.startswith("   "):
            out += [".TP", "\\fB%s\\fR" % opt(" ".join(mc.group(1).split())), esc(mc.group(2))]
            continue
        if line.startswith("  ") and in_items:
            out.append(esc(line.strip()))  # continuation of the item above
            continue
        if line.startswith("  "):
            out += [".RS", ".nf", esc(line.strip()), ".fi", ".RE"]
            continue
        out.append(esc(line.strip()))
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
