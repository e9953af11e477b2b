#!/usr/bin/env python3
"""check_readme_snippets.py — every ```cpp block of README.md is a file of examples/readme/.

A block must equal a whole file of examples/readme/*.cpp, or the part of one between the lines
`// readme-begin` and `// readme-end`, less its common indentation (the rest of the file makes
the part a program). Those
files are compiled with the project's warnings and -Werror (examples/CMakeLists.txt), so every
snippet of the README compiles. Exit status 1, naming the block's line, when one has no file.

usage: scripts/check_readme_snippets.py [--root DIR]
"""
import argparse
import pathlib
import re
import sys
import textwrap

BEGIN = "// readme-begin"
END = "// readme-end"


def snippets(readme):
    """(line number, text) of each ```cpp block."""
    found = []
    lines = readme.read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```cpp":
            start = i + 1
            j = start
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            found.append((start, "\n".join(lines[start:j]).strip("\n")))
            i = j
        i += 1
    return found


def quotable(path):
    """What of `path` a README block may quote: the marked part, else the whole file."""
    text = path.read_text()
    match = re.search(re.escape(BEGIN) + r"\n(.*?)\n[ \t]*" + re.escape(END), text, re.S)
    # The marked part may sit inside a function of the file: its indentation is not quoted.
    return textwrap.dedent(match.group(1) if match else text).strip("\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default=pathlib.Path(__file__).resolve().parent.parent, type=pathlib.Path)
    args = parser.parse_args()
    files = {path.name: quotable(path) for path in sorted((args.root / "examples" / "readme").glob("*.cpp"))}
    blocks = snippets(args.root / "README.md")
    missing = [line for line, text in blocks if text not in files.values()]
    for line in missing:
        print(f"README.md:{line}: this ```cpp block is no file of examples/readme/ (nor the part between "
              f"'{BEGIN}' and '{END}' of one): put it there, so that it is compiled", file=sys.stderr)
    print(f"{len(blocks) - len(missing)} of {len(blocks)} README snippets match a compiled file")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
