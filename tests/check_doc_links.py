#!/usr/bin/env python3
"""Fails unless every relative link in the repository's Markdown documents resolves.

Usage: check_doc_links.py SOURCE_DIR [BINARY_DIR]

Every *.md below SOURCE_DIR is read (build trees, BINARY_DIR and .git left out). A link [text](target) or
![alt](target) outside code blocks and code spans must name an existing file or folder, relative to the
document; a #fragment must be a heading of the target document, as GitHub spells heading anchors. Links with
a scheme (https:, mailto:) are not followed. Standard library only.
"""
import os
import re
import sys

FENCE = re.compile(r"^ {0,3}(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def prose_lines(path):
    """(line number, text) of the lines outside fenced code blocks, code spans removed."""
    in_fence = None
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            match = FENCE.match(line)
            if match:
                if in_fence is None:
                    in_fence = match.group(1)
                elif match.group(1) == in_fence:
                    in_fence = None
                continue
            if in_fence is None:
                yield number, re.sub(r"(`+).*?\1", "", line.rstrip("\n"))


def anchor(heading):
    """GitHub's anchor of a heading: formatting dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path, cache={}):
    if path not in cache:
        seen, found = {}, set()
        in_fence = None
        with open(path, encoding="utf-8") as f:
            for line in f:
                match = FENCE.match(line)
                if match:
                    in_fence = match.group(1) if in_fence is None else (None if match.group(1) == in_fence else in_fence)
                    continue
                heading = HEADING.match(line) if in_fence is None else None
                if heading:
                    base = anchor(heading.group(1))
                    n = seen.get(base, 0)
                    seen[base] = n + 1
                    found.add(base if n == 0 else f"{base}-{n}")
        cache[path] = found
    return cache[path]


def documents(source, binary):
    for root, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs
                         if not (d.startswith("build") or d.startswith(".") or d in ("_deps", "CMakeFiles"))
                         and (binary is None or os.path.realpath(os.path.join(root, d)) != binary))
        for name in sorted(files):
            if name.endswith(".md"):
                yield os.path.join(root, name)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    source = os.path.realpath(sys.argv[1])
    binary = os.path.realpath(sys.argv[2]) if len(sys.argv) == 3 else None
    errors, links, docs = [], 0, 0
    for doc in documents(source, binary):
        docs += 1
        rel = os.path.relpath(doc, source)
        for number, line in prose_lines(doc):
            for match in LINK.finditer(line):
                target = match.group(1)
                if SCHEME.match(target):
                    continue
                links += 1
                path, _, fragment = target.partition("#")
                resolved = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
                if not os.path.exists(resolved):
                    errors.append(f"{rel}:{number}: link to {target}: {os.path.relpath(resolved, source)} does not exist")
                elif fragment and resolved.endswith(".md") and fragment not in anchors(resolved):
                    errors.append(f"{rel}:{number}: link to {target}: {os.path.relpath(resolved, source)} "
                                  f"has no heading with anchor #{fragment}")
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        return 1
    print(f"{links} relative links in {docs} documents resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
