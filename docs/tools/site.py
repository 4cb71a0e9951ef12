#!/usr/bin/env python3
"""Turns the project's GitHub-flavoured Markdown into the pages Doxygen reads (Python 3 stdlib only).

The Markdown sources stay readable on GitHub ($...$ math, <a id="eq-N"></a> anchors, relative
links). Doxygen 1.9.4 reads $ as text and runs its command parser over \\mathbf and friends, so
every page goes through this script at build time (docs/CMakeLists.txt):

  symbols  Doxygen XML of the API (first pass) -> JSON: every documented symbol and the
           equations its documentation cites ("eq. (12)", "eqs. (8)-(10)").
  pages    Markdown -> Doxygen Markdown: $..$ -> \\f$..\\f$, $$..$$ -> \\f[..\\f], anchors -> \\anchor,
           links between pages -> @ref, "eq. (N)" -> a link to the equation, `symbol` -> a link
           to its API page, and under every numbered equation the functions that compute it.
           Fails when an equation has no code that cites it.
  filter   Doxygen INPUT_FILTER for headers: "eq. (N)" in doc comments -> \\ref eq-N.
  bench    bench/results/*.md|txt -> one Markdown page.

Nothing here guesses: a link to a missing page or symbol becomes a \\ref that Doxygen cannot
resolve, and WARN_AS_ERROR turns that into a failed build.
"""
import argparse
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

# "eq. (12)", "eqs. (8)-(10)", "eqs. (11)-(14) and (4)", "equation (5)"
EQ_CITE = re.compile(r"(?<![\w#])(eqs?\.|equations?)(\s*)(\(\d{1,2}\)(?:\s*(?:-|–|,|and|or|to)\s*\(\d{1,2}\))*)")
EQ_NUM = re.compile(r"\((\d{1,2})\)")
N_EQUATIONS = 16


def cited_equations(text):
    """The equation numbers a piece of text cites; a range (8)-(10) cites 8, 9 and 10."""
    found = set()
    for m in EQ_CITE.finditer(text):
        nums = [int(n) for n in EQ_NUM.findall(m.group(3))]
        seps = re.findall(r"\)\s*(-|–|,|and|or|to)\s*\(", m.group(3))
        found.update(nums)
        for (a, b), sep in zip(zip(nums, nums[1:]), seps):
            if sep in ("-", "–", "to") and a < b:
                found.update(range(a, b + 1))
    return sorted(n for n in found if 1 <= n <= N_EQUATIONS)


def link_citations(text, in_comment=False):
    """eq. (12) -> eq. \\ref eq-12 "(12)" (outside code and math: the caller's job).

    In a doc comment the dot of "eq." is escaped ("eq.\\ "), so that Doxygen's JAVADOC_AUTOBRIEF
    does not end the brief description there."""
    def one(m):
        refs = EQ_NUM.sub(lambda n: f'\\ref eq-{n.group(1)} "({n.group(1)})"'
                          if 1 <= int(n.group(1)) <= N_EQUATIONS else n.group(0), m.group(3))
        word = m.group(1) + "\\ " if in_comment and m.group(1).endswith(".") else m.group(1) + m.group(2)
        return word + refs
    return EQ_CITE.sub(one, text)


# ----------------------------------------------------------------------------------------------
# symbols: Doxygen XML -> JSON


def xml_text(node):
    return "" if node is None else " ".join("".join(node.itertext()).split())


def cmd_symbols(args):
    index = ET.parse(os.path.join(args.xml, "index.xml")).getroot()
    symbols = []
    for comp in index.findall("compound"):
        if comp.get("kind") not in ("namespace", "class", "struct"):
            continue
        root = ET.parse(os.path.join(args.xml, comp.get("refid") + ".xml")).getroot()
        cdef = root.find("compounddef")
        cname = cdef.findtext("compoundname")
        if comp.get("kind") != "namespace":
            text = xml_text(cdef.find("briefdescription")) + " " + xml_text(cdef.find("detaileddescription"))
            symbols.append({"name": cname.split("::")[-1], "qname": cname, "kind": comp.get("kind"),
                            "eqs": cited_equations(text)})
        for member in cdef.iter("memberdef"):
            kind = member.get("kind")
            if kind not in ("function", "variable", "typedef", "enum"):
                continue
            name = member.findtext("name")
            text = " ".join(xml_text(member.find(t)) for t in
                            ("briefdescription", "detaileddescription", "inbodydescription"))
            # A function "computes" the equations its first sentence cites, if it cites any there;
            # a later "(zero weight in eq. (13))" is a remark, not an implementation.
            brief = cited_equations(xml_text(member.find("briefdescription")))
            eqs = brief if brief and kind == "function" else cited_equations(text)
            symbols.append({"name": name, "qname": f"{cname}::{name}", "kind": kind, "eqs": eqs})
    # One entry per qualified name (overloads share a page anchor for \ref).
    unique = {}
    for s in symbols:
        if s["qname"] in unique:
            unique[s["qname"]]["eqs"] = sorted(set(unique[s["qname"]]["eqs"]) | set(s["eqs"]))
        else:
            unique[s["qname"]] = s
    with open(args.out, "w") as f:
        json.dump(sorted(unique.values(), key=lambda s: s["qname"]), f, indent=1)


# ----------------------------------------------------------------------------------------------
# pages: GitHub Markdown -> Doxygen Markdown

class Site:
    """What the pages can link to: page labels by repository path, and the API's symbols."""

    def __init__(self, root, pages, symbols):
        self.root = root
        self.pages = pages  # repo-relative path -> label
        self.symbols = symbols
        by_name = {}
        for s in symbols:
            if s["kind"] in ("function", "class", "struct"):
                by_name.setdefault(s["name"], []).append(s)
        # Only names that are unique (ignoring overloads) are linked from `code spans`.
        self.unique = {n: v[0] for n, v in by_name.items() if len({s["qname"] for s in v}) == 1}

    def resolve_link(self, origin, target):
        """A relative link target -> '@ref label' or None when the site has no page for it."""
        if re.match(r"^[a-z]+:", target) or target.endswith(".html"):
            return target
        path, _, frag = target.partition("#")
        if not path:
            return f"@ref {frag}" if frag else None
        repo_path = os.path.normpath(os.path.join(os.path.dirname(origin), path))
        if repo_path.endswith("/README.md") and os.path.dirname(repo_path) in self.pages:
            repo_path = os.path.dirname(repo_path)
        if repo_path in self.pages:
            return f"@ref {frag}" if frag else f"@ref {self.pages[repo_path]}"
        return None


# "<" that does not open an HTML tag Doxygen knows ("monarch run <file>") is text.
NOT_A_TAG = re.compile(r"<(?!/?(?:a|b|i|em|strong|code|tt|kbd|div|span|br|sub|sup|img|p|pre|table|tr|td|th|"
                       r"ul|ol|li|hr|details|summary|center|small|blockquote|dl|dt|dd)\b)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
MD_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def convert_inline(text, origin, site, table=False):
    """Math, links, citations and symbol links in running text (no fenced code, no display math)."""
    links = []

    def hold(m):  # links first, so that nothing inside them is converted
        bang, label, target = m.groups()
        if not bang:  # Doxygen 1.9.4 shows backticks (and HTML) in a link's text literally
            label = re.sub(r"`([^`]+)`", r"\1", label)
        links.append(convert_link(bang, label, target, origin, site))
        return f"\x00{len(links) - 1}\x00"

    text = MD_LINK.sub(hold, text)
    text = convert_spans(text, origin, site, table)
    return re.sub("\x00(\\d+)\x00", lambda m: links[int(m.group(1))], text)


def convert_spans(text, origin, site, table=False):
    out = []
    i = 0
    plain = []  # text outside code and math, converted at the next code span or math span

    def flush():
        s = "".join(plain)
        plain.clear()
        if not text.lstrip().startswith("#"):  # Doxygen does not run \ref inside a heading
            s = link_citations(s)
        s = NOT_A_TAG.sub("&lt;", s)
        out.append(s)

    while i < len(text):
        c = text[i]
        if c == "`":
            m = INLINE_CODE.match(text, i)
            if m:
                flush()
                out.append(convert_code_span(m.group(0), m.group(2), site, table))
                i = m.end()
                continue
        if c == "\\" and i + 1 < len(text) and text[i + 1] == "$":
            plain.append("\\$")
            i += 2
            continue
        if c == "$" and i + 1 < len(text) and not text[i + 1].isspace() and text[i + 1] != "$":
            end = text.find("$", i + 1)
            while end != -1 and text[end - 1] == "\\":
                end = text.find("$", end + 1)
            if end != -1:
                flush()
                out.append("\\f$" + " ".join(text[i + 1:end].split()) + "\\f$")
                i = end + 1
                continue
        plain.append(c)
        i += 1
    flush()
    return "".join(out)


def convert_link(bang, label, target, origin, site):
    if bang:  # an image: Doxygen finds it through IMAGE_PATH
        return f"\\image html {os.path.basename(target)} \"{label}\""
    resolved = site.resolve_link(origin, target)
    if resolved is None:  # a repository file the site does not render: keep the words, drop the link
        if "`" in label or "<code>" in label or " " in label or "." not in label:
            return label
        return f"`{label}`"
    return f"[{label}]({resolved})"


def convert_code_span(span, inner, site, table=False):
    """`monarch_head`, `monarch_head()`, `detail::r_update_block`: a link to the API page. Only
    names with "()", "_" or "::" are taken as code names (`shape` may be a JSON key)."""
    name = inner.strip()
    bare = name[:-2] if name.endswith("()") else name
    last = bare.split("::")[-1]
    if (last in site.unique and re.fullmatch(r"[A-Za-z_][\w:]*", bare)
            and ("()" in name or "_" in last or "::" in bare)):
        s = site.unique[last]
        if s["qname"].endswith("::" + bare) or s["qname"] == bare:
            return f'<code>\\ref {s["qname"]} "{name}"</code>'
    if table:  # Doxygen 1.9.4 reads "<file>" inside a table's code span as an HTML tag
        return span.replace("<", "&lt;").replace(">", "&gt;")
    return span


def eq_code_line(n, site):
    """'Computed by ...' under equation n: every documented symbol whose documentation cites it."""
    funcs = [s for s in site.symbols if n in s["eqs"] and s["kind"] == "function"]
    data = [s for s in site.symbols if n in s["eqs"] and s["kind"] != "function"]
    if not funcs and not data:
        return None
    parts = []
    if funcs:
        parts.append("<b>Code:</b> " + ", ".join(f'\\ref {s["qname"]} "{short(s)}()"' for s in funcs))
    if data:
        parts.append("<b>Types and data:</b> " + ", ".join(f'\\ref {s["qname"]} "{short(s)}"' for s in data))
    return '<div class="eqcode">' + " &nbsp;·&nbsp; ".join(parts) + "</div>"


def short(s):
    q = s["qname"].split("::")
    # monarch::detail::r_update_block -> detail::r_update_block; monarch::Round::c_R -> Round::c_R
    return "::".join(q[1:]) if len(q) > 2 else q[-1]


SUBPAGE_ITEM = re.compile(r"^(\s*(?:[-*+]|\d+\.) )\[([^\]]+)\]\(([^)\s#]+)\)(.*)$")


def convert_page(src_text, origin, label, site, title=None, equations=False, subpages=False):
    """One page. label None: a fragment appended to another page (its first heading stays as is)."""
    lines = src_text.splitlines()
    out = []
    if subpages:  # list items that start with a link to a page make that page a child of this one
        for k, l in enumerate(lines):
            m = SUBPAGE_ITEM.match(l)
            target = m and site.resolve_link(origin, m.group(3))
            if target and target.startswith("@ref "):
                text = m.group(2).replace('"', "'")
                lines[k] = f'{m.group(1)}\\subpage {target[5:]} "{text}"{m.group(4)}'

    # The first heading names the page and carries its label.
    first = next((k for k, l in enumerate(lines) if l.startswith("# ")), None)
    if title is not None:
        out.append(f"# {title} {{#{label}}}")
        out.append("")
    elif first is not None and label not in (None, "index"):  # index: Doxygen's main page
        lines[first] = f"{lines[first]} {{#{label}}}"
    para = []
    missing = set(range(1, N_EQUATIONS + 1)) if equations else set()
    pending_eq = None

    def flush():
        if para:
            out.append(convert_inline("\n".join(para), origin, site, table=para[0].lstrip().startswith("|")))
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^(\s*)(```+|~~~+)(.*)$", line)
        if fence:  # code block: verbatim, with a language Doxygen highlights and links
            flush()
            marker = fence.group(2)
            lang = fence.group(3).strip()
            out.append(fence.group(1) + marker + ({"cpp": "{.cpp}", "c++": "{.cpp}", "sh": "{.sh}"}.get(lang, "")
                                                 if lang else ""))
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(marker):
                out.append(lines[i])
                i += 1
            out.append(fence.group(1) + marker)
            i += 1
            continue
        anchor = re.match(r'^\s*<a id="(eq-(\d+))"></a>\s*$', line)
        if anchor:
            flush()
            out.append(f"\\anchor {anchor.group(1)}")
            pending_eq = int(anchor.group(2))
            i += 1
            continue
        if line.strip().startswith("$$"):
            flush()
            body = []
            rest = line.strip()[2:]
            if rest.rstrip().endswith("$$") and rest.strip() != "":  # $$ ... $$ on one line
                body.append(rest.rstrip()[:-2])
            else:
                if rest.strip():
                    body.append(rest)
                i += 1
                while i < len(lines) and not lines[i].strip().endswith("$$"):
                    body.append(lines[i])
                    i += 1
                if i < len(lines) and lines[i].strip() != "$$":
                    body.append(lines[i].strip()[:-2])
            out.append("\\f[")
            out.extend(body)
            out.append("\\f]")
            tag = re.search(r"\\tag\{(\d+)\}", "\n".join(body))
            if equations and tag:
                n = int(tag.group(1))
                if pending_eq not in (None, n):
                    sys.exit(f"{origin}: anchor eq-{pending_eq} precedes \\tag{{{n}}}")
                code = eq_code_line(n, site)
                if code:
                    out.append("")
                    out.append(code)
                    missing.discard(n)
                pending_eq = None
            i += 1
            continue
        if line.strip() == "" or re.match(r"^\s*(#{1,6} |\||[-*+] |\d+\. )", line):
            flush()  # paragraph, heading, table row or list item: a unit of its own
            if line.strip() == "":
                out.append("")
            else:
                para.append(line)
                if not re.match(r"^\s*([-*+] |\d+\. )", line):
                    flush()
            i += 1
            continue
        para.append(line)
        i += 1
    flush()
    if missing:
        sys.exit(f"{origin}: no documented code cites equation(s) {sorted(missing)}: "
                 "add 'eq. (N)' to the documentation of the function that computes it")
    return "\n".join(out) + "\n"


def cmd_pages(args):
    symbols = json.load(open(args.symbols)) if args.symbols else []
    specs = []
    pages = {}
    for spec in args.page:
        # path=label[@origin][:equations]
        path, _, rest = spec.partition("=")
        label, _, origin = rest.partition("@")
        label, *flags = label.split(":")
        equations, subpages = "equations" in flags, "subpages" in flags
        if "optional" in flags and not os.path.exists(path):
            continue  # a page another area has not written yet: links to it stay plain text
        origin = origin or os.path.relpath(path, args.root)
        pages[os.path.normpath(origin)] = label
        specs.append((path, label, origin, equations, subpages))
    site = Site(args.root, pages, symbols)
    # cuda/ and models/ have functions of the same names as the reference's (monarch_attention)
    # and are not in the API reference: their pages get no `code span` links.
    plain_site = Site(args.root, pages, [])
    os.makedirs(args.out, exist_ok=True)
    for path, label, origin, equations, subpages in specs:
        text = open(path, encoding="utf-8").read()
        page_site = plain_site if origin.startswith(("cuda/", "models/")) else site
        page = convert_page(text, origin, label, page_site, equations=equations, subpages=subpages)
        if label == args.mainpage and args.mainpage_footer:
            # The learning path goes before the main page's first section, where a reader looks.
            footer = os.path.relpath(args.mainpage_footer, args.root)
            path_md = convert_page(open(args.mainpage_footer, encoding="utf-8").read(), footer, None, site,
                                   subpages=True)
            at = page.find("\n## ")
            page = page[:at + 1] + path_md + "\n" + page[at + 1:] if at >= 0 else page + "\n" + path_md
        with open(os.path.join(args.out, label + ".md"), "w", encoding="utf-8") as f:
            f.write(page)


# ----------------------------------------------------------------------------------------------
# filter: header doc comments

DOC_COMMENT = re.compile(r"(///<?|//!<?)(.*)$")


def comment_text(text):
    """A doc comment's words for Doxygen: citations linked, and a dot product written " . " shown
    as " · " (a spaced dot would also end the autobrief sentence there)."""
    return re.sub(r"(?<= )\.(?= )", "·", link_citations(text, in_comment=True))


def cmd_filter(args):
    in_block = False
    for line in open(args.file, encoding="utf-8"):
        if in_block or "/**" in line:
            in_block = "*/" not in line.split("/**", 1)[-1]
            sys.stdout.write(comment_text(line))
            continue
        m = DOC_COMMENT.search(line)
        if m:
            line = line[:m.start(2)] + comment_text(m.group(2)) + "\n"
        sys.stdout.write(line)


# ----------------------------------------------------------------------------------------------
# bench: the recorded results as one page

def cmd_bench(args):
    files = sorted(f for f in os.listdir(args.dir) if f.endswith((".md", ".txt"))) if os.path.isdir(args.dir) else []
    out = ["# Benchmark results", "",
           "Every file of `bench/results/`, newest first, exactly as recorded (machine and date are in each",
           "file). Chapter 7 of the notebooks plots them; `bench/NOTES.md` holds the predictions.", ""]
    if not files:
        out.append("No results are recorded yet.")
    for name in sorted(files, reverse=True):
        text = open(os.path.join(args.dir, name), encoding="utf-8").read().rstrip()
        out.append(f"## {name}")
        out.append("")
        if name.endswith(".md"):
            # Demote headings so that each file stays one section of this page.
            out.extend(("##" + l) if l.startswith("#") else l for l in text.splitlines())
        else:
            out.append("```")
            out.append(text)
            out.append("```")
        out.append("")
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("symbols")
    s.add_argument("--xml", required=True)
    s.add_argument("--out", required=True)
    s = sub.add_parser("pages")
    s.add_argument("--root", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--symbols")
    s.add_argument("--mainpage", default="")
    s.add_argument("--mainpage-footer", default="")
    s.add_argument("--page", action="append", default=[],
                   help="path=label[:equations][:subpages][:optional][@origin]")
    s = sub.add_parser("filter")
    s.add_argument("file")
    s = sub.add_parser("bench")
    s.add_argument("--dir", required=True)
    s.add_argument("--out", required=True)
    args = p.parse_args()
    {"symbols": cmd_symbols, "pages": cmd_pages, "filter": cmd_filter, "bench": cmd_bench}[args.cmd](args)


if __name__ == "__main__":
    main()
