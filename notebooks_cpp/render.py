#!/usr/bin/env python3
"""Literate C++ notebooks: instrument, run, render (Python 3 stdlib only).

A notebook is one .cpp file. Lines whose first non-blank characters are `///` are prose
(Markdown, $math$ allowed); everything else is code. Prose may stand at the top level (column 0)
or in the body of main() (indented by exactly two spaces); nowhere else.

  instrument SRC OUT   Copies SRC, replacing the first line of every prose block inside main() by
                       `nb::cell(ID);` and every other prose line by a blank line, so line numbers
                       (and compiler messages) stay those of SRC. At run time the markers split
                       the output into the cells of the code that follows each prose block.
  run --exe --src --outdir --md
                       Runs the notebook with outdir as its figure folder, fails if it fails, and
                       writes the page: prose, code, the captured output and the figures, in order.
"""
import argparse
import os
import re
import subprocess
import sys

PROSE = re.compile(r"^(\s*)///(?: (.*)|())$")
MARK = "\x1e@nb:"


def blocks(lines):
    """[(kind, indent, [lines], first_line_no)], kind 'prose' or 'code'."""
    out = []
    for no, line in enumerate(lines):
        m = PROSE.match(line)
        kind = "prose" if m else "code"
        indent = len(m.group(1)) if m else None
        text = (m.group(2) or "") if m else line
        if out and out[-1][0] == kind and (kind == "code" or out[-1][1] == indent):
            out[-1][2].append(text)
        else:
            out.append([kind, indent, [text], no])
    return out


def cmd_instrument(args):
    lines = open(args.src, encoding="utf-8").read().split("\n")
    result = list(lines)
    for pid, (kind, indent, body, first) in enumerate(b for b in blocks(lines) if b[0] == "prose"):
        if indent not in (0, 2):
            sys.exit(f"{args.src}:{first + 1}: prose must start in column 0 or 2 (main's body), not {indent}")
        for k in range(len(body)):
            result[first + k] = ""
        if indent == 2:
            result[first] = f"  ::nb::cell({pid});"
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(result))


def strip_blank(lines):
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def cmd_run(args):
    os.makedirs(args.outdir, exist_ok=True)
    env = dict(os.environ)
    env.pop("MONARCH_NB_TEST", None)  # rendering shows everything, also when a GPU is missing
    proc = subprocess.run([os.path.abspath(args.exe), os.path.abspath(args.outdir)], cwd=args.outdir,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        sys.exit(f"{args.src}: the notebook failed (exit {proc.returncode}); no page written")

    # Output per cell: cells[id] = list of ('text', str) / ('figure', file, caption).
    cells = {None: []}
    current = None
    for line in proc.stdout.split("\n"):  # not splitlines(): it breaks lines at \x1e too
        if line.startswith(MARK + "cell "):
            current = int(line[len(MARK) + 5:])
            cells[current] = []
        elif line.startswith(MARK + "figure "):
            file, _, caption = line[len(MARK) + 7:].partition("|")
            cells.setdefault(current, []).append(("figure", file, caption))
        else:
            items = cells.setdefault(current, [])
            if items and items[-1][0] == "text":
                items[-1] = ("text", items[-1][1] + "\n" + line)
            else:
                items.append(("text", line))
    if proc.stderr.strip():
        cells.setdefault(current, []).append(("text", "stderr:\n" + proc.stderr.rstrip()))

    lines = open(args.src, encoding="utf-8").read().split("\n")
    src_rel = os.path.relpath(args.src, args.root)
    page = []
    pid = -1
    pending = cells.get(None, [])  # output printed before the first marker
    for kind, indent, body, first in blocks(lines):
        if kind == "prose":
            emit_output(page, pending)
            pending = []
            pid += 1
            page.extend(body)
            if pid == 0:  # under the title: where the page comes from
                page.append("")
                page.append(f"*Rendered from `{src_rel}` by "
                            f"`notebooks_cpp/render.py`: the code below ran when the docs were built, "
                            f"and every output and figure on this page is what it printed and drew.*")
            pending = cells.get(pid, []) if indent == 2 else []
            continue
        code = strip_blank(body)
        if code:
            page.append("")
            page.append("```cpp")
            page.extend(code)
            page.append("```")
            page.append("")
    emit_output(page, pending)
    with open(args.md, "w", encoding="utf-8") as f:
        f.write("\n".join(page) + "\n")


def emit_output(page, items):
    for item in items:
        if item[0] == "text":
            text = "\n".join(strip_blank(item[1].split("\n")))
            if text:
                page.append("")
                page.append('<div class="nbout">output</div>')
                page.append("")
                page.append("```text")
                page.append(text)
                page.append("```")
                page.append("")
        else:
            page.append("")
            page.append(f"![{item[2]}]({item[1]})")
            page.append("")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("instrument")
    s.add_argument("src")
    s.add_argument("out")
    s = sub.add_parser("run")
    s.add_argument("--exe", required=True)
    s.add_argument("--src", required=True)
    s.add_argument("--root", required=True)
    s.add_argument("--outdir", required=True)
    s.add_argument("--md", required=True)
    args = p.parse_args()
    {"instrument": cmd_instrument, "run": cmd_run}[args.cmd](args)


if __name__ == "__main__":
    main()
