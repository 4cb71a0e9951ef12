#!/usr/bin/env python3
"""Debian package summary <-> long description pairs for the zero-shot retrieval study.

Reads an apt Translation-en file (RFC 822 stanzas with Package and Description-en) on stdin and
writes TSV lines "package<TAB>summary<TAB>description" on stdout, in a deterministic order: sorted
by the SHA-1 of the package name, so that any prefix of the file is a pseudo-random sample that
does not depend on alphabetical families (lib*, python3-*). Long descriptions (>= LONG_WORDS words,
roughly 128 to 256 tokens after truncation) alternate with the others, so that every prefix holds
about one half long texts instead of the archive's one tenth.

The text is Debian's, written by package maintainers, not by this project. Packages built from one
source often share a description word for word; we keep one pair per distinct first paragraph and
per distinct summary, so every query has exactly one correct document.
"""
import hashlib
import sys

MIN_SUMMARY_WORDS = 3     # "Foo library" says too little to retrieve anything
MIN_DESCRIPTION_WORDS = 15
LONG_WORDS = 90           # about 128 tokens and more: the lengths where attention cost matters


def stanzas(lines):
    cur = []
    for line in lines:
        if line.strip() == "":
            if cur:
                yield cur
            cur = []
        else:
            cur.append(line.rstrip("\n"))
    if cur:
        yield cur


def parse(stanza):
    package, summary, body, in_desc = None, None, [], False
    for line in stanza:
        if line.startswith("Package:"):
            package, in_desc = line.split(":", 1)[1].strip(), False
        elif line.startswith("Description-en:"):
            summary, in_desc = line.split(":", 1)[1].strip(), True
        elif line.startswith(" ") and in_desc:
            body.append(line[1:])
        else:
            in_desc = False
    return package, summary, body


def main():
    seen_para, seen_summary, pairs = set(), set(), []
    for st in stanzas(sys.stdin):
        package, summary, body = parse(st)
        if not package or not summary or not body:
            continue
        # Debian's extended description: " ." lines separate paragraphs; join everything with spaces.
        paragraphs, cur = [], []
        for line in body:
            if line.strip() == ".":
                if cur:
                    paragraphs.append(" ".join(cur))
                cur = []
            else:
                cur.append(line.strip())
        if cur:
            paragraphs.append(" ".join(cur))
        text = " ".join(p for p in paragraphs if p).replace("\t", " ")
        summary = summary.replace("\t", " ")
        if len(summary.split()) < MIN_SUMMARY_WORDS or len(text.split()) < MIN_DESCRIPTION_WORDS:
            continue
        key_para, key_summary = paragraphs[0].lower(), summary.lower()
        if key_para in seen_para or key_summary in seen_summary:
            continue
        seen_para.add(key_para)
        seen_summary.add(key_summary)
        pairs.append((hashlib.sha1(package.encode()).hexdigest(), package, summary, text))
    pairs.sort()
    long = [p for p in pairs if len(p[3].split()) >= LONG_WORDS]
    short = [p for p in pairs if len(p[3].split()) < LONG_WORDS]
    ordered = []
    for i in range(max(len(long), len(short))):
        ordered += ([long[i]] if i < len(long) else []) + ([short[i]] if i < len(short) else [])
    out = sys.stdout
    for _, package, summary, text in ordered:
        out.write(f"{package}\t{summary}\t{text}\n")


if __name__ == "__main__":
    main()
