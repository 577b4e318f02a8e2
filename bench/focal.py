"""How fast the focal method is found in a big file, next to the cost of parsing it.

Usage:
    python bench/focal.py [--lines 5000] [--repeat 15] [--positions 2000]

Generates one Python and one Java file of about `--lines` lines (many classes and methods, always the
same text), then, for each language, measures side by side in the same run:

- full parse: `parser.parse(data)` of the whole file;
- focal lookup: `focal_at(file, offset)` at `--positions` spread-out positions (median of single calls);
- incremental re-parse after a one-line edit: `tree.edit(...)` then `parser.parse(new_data, old_tree)`,
  the edited line is a method's last `return`, 10%, 50% and 90% of the way down the file (in Python,
  re-parsing after an edit to the last line of a block costs more the more code follows it, so one
  position alone would mislead);
- enumeration: `functions(file)`, every testable function of the file.

Each measurement is repeated `--repeat` times, interleaved, and the median is reported, also as a
ratio to the median full parse, since only the ratios are comparable between machines.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from tree_sitter import Point

from unitune.focal import focal_at, functions
from unitune.languages import JAVA, PYTHON, new_parser
from unitune.source import SourceFile


# -- generated sources ---------------------------------------------------------------------------

def python_source(lines: int) -> str:
    """A Python module of about `lines` lines: classes with decorated, async and nested methods."""
    rng = random.Random(1)
    out = ['"""Generated for bench/focal.py."""', "import functools", ""]
    index = 0
    while len(out) < lines:
        out += ["", f"class Service{index}:", f'    """Service number {index}."""', "",
                f"    limit = {rng.randint(1, 99)}", ""]
        out += ["    def __init__(self, value):", "        self.value = value", ""]
        for method in range(rng.randint(4, 9)):
            name = f"op_{index}_{method}"
            if method % 3 == 0:
                out.append("    @functools.lru_cache(maxsize=None)")
            if method % 4 == 1:
                out += [f"    async def {name}(self, items):", "        total = 0",
                        "        for item in items:", "            total += await item", "        return total", ""]
            else:
                out += [f"    def {name}(self, x, y={method}):", "        def helper(z):",
                        f"            return z * {rng.randint(2, 9)} + self.limit", "",
                        "        values = [helper(v) for v in range(x)]",
                        "        return sorted(values, key=lambda v: -v)[:y]", ""]
        out += ["    class Config:", "        def load(self):", "            return {}", ""]
        out += ["", f"def helper_{index}(a, b):", "    if a > b:", "        return a - b", "    return b - a", ""]
        index += 1
    return "\n".join(out) + "\n"


def java_source(lines: int) -> str:
    """A Java file of about `lines` lines: one top-level class holding many nested classes."""
    rng = random.Random(2)
    out = ["package bench;", "", "import java.util.List;", "import java.util.function.Function;", "",
           "public class Generated {"]
    index = 0
    while len(out) < lines - 1:
        out += ["", f"    public static class Service{index} {{",
                f"        private final int limit = {rng.randint(1, 99)};", "",
                f"        public Service{index}(int value) {{", "            this.value = value;", "        }", "",
                "        private int value;", ""]
        for method in range(rng.randint(4, 9)):
            name = f"op{index}x{method}"
            if method % 3 == 0:
                out.append("        @Deprecated")
            if method % 4 == 1:
                out += [f"        public <T extends Comparable<T>> T {name}(List<T> items) {{",
                        "            T best = items.get(0);", "            for (T item : items) {",
                        "                if (item.compareTo(best) > 0) {", "                    best = item;",
                        "                }", "            }", "            return best;", "        }", ""]
            else:
                out += [f"        public int {name}(int x, int y) {{",
                        f"            Function<Integer, Integer> f = v -> v * {rng.randint(2, 9)} + limit;",
                        "            Runnable r = new Runnable() {", "                @Override",
                        "                public void run() {", "                    System.out.println(x);",
                        "                }", "            };", "            return f.apply(x) + y;", "        }", ""]
        out += ["        enum Mode {", "            ON, OFF;", "            boolean active() {",
                "                return this == ON;", "            }", "        }", "    }"]
        index += 1
    out.append("}")
    return "\n".join(out) + "\n"


# -- measurements --------------------------------------------------------------------------------

EDIT_AT = (0.1, 0.5, 0.9)  # where the one-line edit is, as a fraction of the file's lines

#: The line edited: a method's last statement, the same kind of line at every position.
EDITED_LINE = {PYTHON: b"return sorted(", JAVA: b"return f.apply("}


def one_line_edit(data: bytes, fraction: float, needle: bytes) -> tuple[bytes, dict, int]:
    """Replace the first line holding `needle` at or after `fraction` of the file with a shorter
    `return`: the new bytes, the arguments of `Tree.edit` describing the change, and the edited line
    (1-based)."""
    lines = data.split(b"\n")
    row = int(len(lines) * fraction)
    while needle not in lines[row]:
        row += 1
    old_line = lines[row]
    indent = old_line[: len(old_line) - len(old_line.lstrip())]
    new_line = indent + (b"return 12345;" if old_line.rstrip().endswith(b";") else b"return 12345")
    start = sum(len(line) + 1 for line in lines[:row]) + len(indent)
    old_end = start + len(old_line) - len(indent)
    new_end = start + len(new_line) - len(indent)
    new_data = data[:start] + new_line[len(indent):] + data[old_end:]
    edit = dict(
        start_byte=start, old_end_byte=old_end, new_end_byte=new_end,
        start_point=Point(row, len(indent)), old_end_point=Point(row, len(old_line)),
        new_end_point=Point(row, len(new_line)),
    )
    return new_data, edit, row + 1


def measure(language: str, text: str, repeat: int, positions: int) -> dict:
    parser = new_parser(language)
    file = SourceFile(text, language)
    data = file.data
    edits = [one_line_edit(data, fraction, EDITED_LINE[language]) for fraction in EDIT_AT]

    # An incremental tree must be the tree of the edited text, or its timing means nothing.
    for new_data, edit, line in edits:
        old_tree = parser.parse(data)
        old_tree.edit(**edit)
        if str(parser.parse(new_data, old_tree).root_node) != str(parser.parse(new_data).root_node):
            raise SystemExit(f"{language}: the re-parse after editing line {line} disagrees with a full parse")

    rng = random.Random(3)
    offsets = [rng.randrange(len(data)) for _ in range(positions)]
    found = sum(focal_at(file, offset) is not None for offset in offsets)

    full, enumerate_, lookups = [], [], []
    incremental: list[list[float]] = [[] for _ in edits]
    clock = time.perf_counter
    for _ in range(repeat):
        start = clock()
        parser.parse(data)
        full.append(clock() - start)

        for times, (new_data, edit, _line) in zip(incremental, edits):
            old_tree = parser.parse(data)
            start = clock()
            old_tree.edit(**edit)
            parser.parse(new_data, old_tree)
            times.append(clock() - start)

        start = clock()
        functions(file)
        enumerate_.append(clock() - start)

        for offset in offsets:
            start = clock()
            focal_at(file, offset)
            lookups.append(clock() - start)

    return {
        "lines": text.count("\n"),
        "bytes": len(data),
        "functions": len(functions(file)),
        "inside": found / len(offsets),
        "full": statistics.median(full),
        "incremental": [statistics.median(times) for times in incremental],
        "enumerate": statistics.median(enumerate_),
        "lookup": statistics.median(lookups),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=5000, help="lines per generated file (default 5000)")
    parser.add_argument("--repeat", type=int, default=15, help="repetitions of each measurement (default 15)")
    parser.add_argument("--positions", type=int, default=2000, help="focal lookups per repetition (default 2000)")
    args = parser.parse_args(argv)

    results = {
        PYTHON: measure(PYTHON, python_source(args.lines), args.repeat, args.positions),
        JAVA: measure(JAVA, java_source(args.lines), args.repeat, args.positions),
    }

    print(f"focal-method benchmark: medians of {args.repeat} runs, {args.positions} lookup positions per run\n")
    header = f"{'':24}" + "".join(f"{language:>24}" for language in results)
    print(header)
    print("-" * len(header))

    def row(label: str, cell) -> None:
        print(f"{label:24}" + "".join(f"{cell(r):>24}" for r in results.values()))

    row("lines / bytes", lambda r: f"{r['lines']} / {r['bytes']}")
    row("testable functions", lambda r: f"{r['functions']}")
    row("positions in a function", lambda r: f"{r['inside']:.0%}")
    row("full parse", lambda r: f"{r['full'] * 1e3:8.2f} ms   1.0000x")
    row("focal lookup", lambda r: f"{r['lookup'] * 1e6:8.1f} µs  {r['lookup'] / r['full']:7.4f}x")
    for index, fraction in enumerate(EDIT_AT):
        row(f"re-parse, edit at {fraction:.0%}",
            lambda r: f"{r['incremental'][index] * 1e3:8.2f} ms  {r['incremental'][index] / r['full']:7.4f}x")
    row("enumerate functions", lambda r: f"{r['enumerate'] * 1e3:8.2f} ms  {r['enumerate'] / r['full']:7.4f}x")
    print("\nratios are to the full parse of the same file, measured in the same run;")
    print("re-parse = tree.edit() + parser.parse(new, old_tree) after rewriting a method's last `return`")


if __name__ == "__main__":
    main()
