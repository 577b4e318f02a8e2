"""Assured Java tests: the stages of `unitune.assured.assure` for JUnit 5, run with
`unitune.assured.java_runner` (javac and the JUnit console launcher, in the sandbox).

1. checks: the test calls the focal method and asserts something;
2. compile every candidate in the test class; a candidate the compiler rejects is dropped (the
   error's line says which) and the rest compiled again;
3. run; a failing test is repaired from what JUnit reports, one failing statement per run, for at
   most `REPAIR_ROUNDS` runs: `assertEquals` gets the value the code gave (`expected: <5> but was:
   <6>`) as its expected value, `assertTrue`/`assertFalse` swap, an `assertThrows` of the wrong
   type names the type thrown, one nothing satisfied is removed, and a statement that threw is
   wrapped in `assertThrows(ThatType.class, ...)`; each repaired line carries a comment saying the
   value was observed (a regression oracle);
4. three runs after one compilation, with JaCoCo's line and branch coverage of the focal method when it
   is installed (Debian: `libjacoco-java`): a test that fails once is flaky and dropped, and the
   smallest set of the reliable ones that reaches their best coverage is kept. Without JaCoCo every
   reliable test is kept, best first, and says that coverage was not measured. Mutants are Python's only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from unitune.assured.assure import reject
from unitune.assured.postprocess import GeneratedTest, rate
from unitune.insertion import apply, plan_insertion
from unitune.languages import JAVA, parser_for
from unitune.syntax_walk import descendants

RUNS = 3
REPAIR_ROUNDS = 3
COMPILE_ROUNDS = 3
OBSERVED_COMMENT = "// expected value observed by running the code (regression oracle)"
RAISED_COMMENT = "// thrown when the code was run (regression oracle)"
_EXPECTED = re.compile(r"expected: <(.*)> but was: <(.*)>\s*$", re.DOTALL)
_THROWN_INSTEAD = re.compile(r"Unexpected exception type thrown, expected: <([\w.$]+)> but was: <([\w.$]+)>")
_NOTHING_THROWN = "to be thrown, but nothing was thrown"


@dataclass
class JavaAssured:
    kept: list[GeneratedTest]
    rejected: list[GeneratedTest]
    notes: list[str]


def assure_java(job, tests: list[GeneratedTest], stage: str, class_name: str) -> JavaAssured:
    """Run the stages on `tests`; `job` is `unitune.assured.assure.Job`, `class_name` the test
    class's fully qualified name. Raises `SandboxError` when Java tests cannot run here."""
    from unitune.assured.java_runner import COMPILE_ERROR, run_java_tests

    rejected: list[GeneratedTest] = []
    alive = []
    for test in tests:
        if not test.calls_focal:
            reject(test, f"does not call {job.function.name}", rejected)
        elif not test.assertions:
            reject(test, "asserts nothing", rejected)
        else:
            alive.append(test)
    notes: list[str] = []
    for attempt in range(COMPILE_ROUNDS + REPAIR_ROUNDS):
        if not alive:
            break
        job.report(stage, attempt / (COMPILE_ROUNDS + REPAIR_ROUNDS + 1), f"compiling and running {len(alive)} test(s)")
        text = test_file_text(job, alive)
        result = run_java_tests(job.root, class_name, 120, {**job.unsaved, job.test_rel: text},
                                methods=[test.name for test in alive])
        if result.status == COMPILE_ERROR:
            broken = _blame(text, alive, result.output, job.test_rel)
            if not broken:
                for test in alive:
                    reject(test, f"the test class does not compile: {_first_error(result.output)}", rejected)
                return JavaAssured([], rejected, notes)
            for test in alive:
                if test.name in broken:
                    reject(test, f"does not compile: {broken[test.name]}", rejected)
            alive = [test for test in alive if test.name not in broken]
            continue
        cases = result.runs[0] if result.runs else {}
        failing = [test for test in alive if cases.get(test.name, ("error",))[0] != "passed"]
        if not failing:
            break
        for test in failing:
            outcome = cases.get(test.name)
            repaired = _repair(test, text, outcome, job.function.name) if outcome and job.repair_mode == "observe" else None
            if repaired is None:
                reject(test, f"failed when run: {(outcome or ('', 'no result'))[1][:300]}", rejected)
                alive.remove(test)
    if not alive:
        return JavaAssured([], rejected, notes)
    job.report(stage, 0.9, f"running {len(alive)} test(s) {RUNS} times, and each with coverage")
    text = test_file_text(job, alive)
    result = run_java_tests(job.root, class_name, 180, {**job.unsaved, job.test_rel: text},
                            methods=[test.name for test in alive], repeat=RUNS, coverage_of=_focal_class(job))
    kept = []
    for test in alive:
        outcomes = [run.get(test.name, ("error", "no result", "", ""))[0] for run in result.runs]
        if len(outcomes) == RUNS and all(outcome == "passed" for outcome in outcomes):
            test.adds = f"passed {RUNS} runs (coverage not measured: JaCoCo is not installed)"
            kept.append(test)
        elif "passed" not in outcomes:
            message = result.runs[0].get(test.name, ("", "no result"))[1] if result.runs else result.status
            reject(test, f"failed when run after repair: {message[:300]}", rejected)
        else:
            reject(test, f"flaky: {', '.join(outcomes)} in {RUNS} runs", rejected)
    if result.coverage and kept:
        kept = _select_by_coverage(job, kept, result.coverage, rejected)
    return JavaAssured(kept, rejected, notes)


def _focal_class(job) -> str:
    """The focal method's class as JaCoCo names it: `com.example.bank.Account`, `pkg.Outer$Inner`."""
    package = re.search(r"^\s*package\s+([\w.]+)\s*;", job.focal_source, flags=re.MULTILINE)
    name = "$".join(job.function.class_path) or job.function.name
    return f"{package.group(1)}.{name}" if package else name


def _select_by_coverage(job, tests, coverage, rejected) -> list[GeneratedTest]:
    """The smallest set of `tests` reaching their best line and branch coverage of the focal method
    (JaCoCo counts branches per line, not which ones: a test's branches are numbered on each line)."""
    from unitune.assured.assure import TestValue, select_tests

    low, high = job.function.start_line, job.function.end_line
    statements: set[int] = set()
    branch_total: dict[int, int] = {}
    values = {}
    for test in tests:
        lines = {line: counters for line, counters in coverage.get(test.name, {}).items() if low <= line <= high}
        statements |= set(lines)
        for line, (_, total, _) in lines.items():
            branch_total[line] = max(branch_total.get(line, 0), total)
        values[test.name] = TestValue(
            lines={line for line, (status, _, _) in lines.items() if status in (2, 3)},
            branches={(line, k) for line, (_, _, covered) in lines.items() for k in range(covered)})
    chosen = select_tests(tests, values, len(statements), sum(branch_total.values()), 0, rejected)
    for test in chosen:
        test.adds = f"passed {RUNS} runs; " + values[test.name].adds
    return chosen


def _repair(test: GeneratedTest, file_text: str, outcome: tuple[str, str, str, str], focal: str) -> bool | None:
    """Repair the statement JUnit blames in `test` (in place); None when it cannot be repaired."""
    _, message, kind, trace = outcome
    row = _failing_row(test, file_text, trace)
    if row is None:
        return None
    lines = test.source.split("\n")
    if not 0 <= row < len(lines):
        return None
    line = lines[row]
    pad = line[: len(line) - len(line.lstrip())]
    expected = _EXPECTED.search(message or "")
    if "AssertionFailedError" in kind and expected is not None and "assertEquals" in line:
        new = _replace_expected(line, expected.group(2))
        if new is None:
            return None
        lines[row:row + 1] = [pad + OBSERVED_COMMENT, new]
        note = f"assertEquals now expects {expected.group(2)[:40]}, the value observed when run"
    elif "AssertionFailedError" in kind and re.search(r"\bassert(True|False)\(", line):
        lines[row:row + 1] = [pad + OBSERVED_COMMENT,
                              re.sub(r"\bassert(True|False)\(", lambda m: "assertFalse(" if m.group(1) == "True" else "assertTrue(", line, count=1)]
        note = "assertTrue/assertFalse swapped, as observed when run"
    elif _THROWN_INSTEAD.search(message or "") and "assertThrows" in line:
        wanted, thrown = _THROWN_INSTEAD.search(message).groups()
        short = wanted.rsplit(".", 1)[-1]
        name = thrown.removeprefix("java.lang.") if thrown.count(".") == 2 and thrown.startswith("java.lang.") else thrown
        lines[row:row + 1] = [pad + RAISED_COMMENT, re.sub(rf"\b{re.escape(short)}\.class", f"{name}.class", line, count=1)]
        note = f"assertThrows now expects {name}, as thrown when run"
    elif _NOTHING_THROWN in (message or "") and "assertThrows" in line and line.rstrip().endswith(";"):
        del lines[row]
        note = "removed an assertThrows that nothing satisfied"
    elif kind and "AssertionFailedError" not in kind and line.rstrip().endswith(";") and not line.lstrip().startswith(("return", "assert")):
        name = kind.removeprefix("java.lang.") if kind.count(".") == 2 and kind.startswith("java.lang.") else kind
        statement = line.strip().rstrip(";")
        if "=" in statement.split("(")[0]:
            return None  # a declaration that threw: the names it declares are used later
        lines[row:row + 1] = [pad + RAISED_COMMENT, f"{pad}assertThrows({name}.class, () -> {statement});"]
        note = f"`{statement[:40]}` threw {name} when run; now expected to"
    else:
        return None
    test.source = "\n".join(lines)
    test.repaired.append(note)
    rate(test, focal)
    return True


def _failing_row(test: GeneratedTest, file_text: str, trace: str) -> int | None:
    """The row, within `test.source`, of the test's line the failure's stack trace names."""
    span = _method_rows(file_text).get(test.name)
    if span is None:
        return None
    found = re.findall(rf"\.{re.escape(test.name)}\([\w$]+\.java:(\d+)\)", trace or "")
    if not found:
        return None
    return int(found[0]) - 1 - span[0]


def _method_rows(text: str) -> dict[str, tuple[int, int]]:
    """Method name -> (first row, last row), 0-based, of every method in the Java file `text`."""
    root = parser_for(JAVA).parse(text.encode("utf-8")).root_node
    rows: dict[str, tuple[int, int]] = {}
    for node in descendants(root, named_only=True):
        if node.type == "method_declaration":
            name = node.child_by_field_name("name")
            if name is not None:  # of overloads, the first one
                rows.setdefault(name.text.decode("utf-8", errors="replace"), (node.start_point.row, node.end_point.row))
    return rows


def _replace_expected(line: str, observed: str) -> str | None:
    """`line`'s `assertEquals(EXPECTED, ...)` with EXPECTED written as `observed`, in the kind of
    literal EXPECTED was; None when that cannot be written."""
    root = parser_for(JAVA).parse(f"class X {{ void f() {{ {line.strip()} }} }}".encode("utf-8")).root_node
    calls = [node for node in descendants(root, named_only=True)
             if node.type == "method_invocation" and (node.child_by_field_name("name") or node).text == b"assertEquals"]
    if not calls:
        return None
    arguments = calls[-1].child_by_field_name("arguments")  # of a line's several, the last one
    if arguments is None or arguments.named_child_count < 2:
        return None
    first = arguments.named_children[0]
    literal = _java_literal(first.type, first.text.decode("utf-8", errors="replace"), observed)
    if literal is None:
        return None
    old = first.text.decode("utf-8", errors="replace")
    return line.replace(old, literal, 1) if old in line else None


def _java_literal(kind: str, old: str, observed: str) -> str | None:
    if kind == "string_literal":
        return '"' + observed.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if kind == "character_literal" and len(observed) == 1:
        return "'" + observed.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if observed in ("true", "false") and kind in ("true", "false"):
        return observed
    if re.fullmatch(r"-?\d+", observed) and kind in ("decimal_integer_literal", "unary_expression"):
        return observed + ("L" if old.endswith(("L", "l")) else "")
    if re.fullmatch(r"-?\d+(\.\d+)?([eE]-?\d+)?", observed) and kind in ("decimal_floating_point_literal", "unary_expression"):
        return observed + ("f" if old.endswith(("f", "F")) else "")
    if observed == "null" and kind == "null_literal":
        return "null"
    return None


def _blame(text: str, tests: list[GeneratedTest], output: str, test_rel: str) -> dict[str, str]:
    """The names of the candidates the compiler's errors point into, with the first error of each."""
    rows = _method_rows(text)
    name = test_rel.rsplit("/", 1)[-1]
    blamed: dict[str, str] = {}
    for line, message in re.findall(rf"{re.escape(name)}:(\d+): error: (.*)", output):
        row = int(line) - 1
        for test in tests:
            span = rows.get(test.name)
            if span and span[0] <= row <= span[1] and test.name not in blamed:
                blamed[test.name] = message.strip()
    return blamed


def _first_error(output: str) -> str:
    match = re.search(r"error: (.*)", output)
    return match.group(1).strip() if match else output.strip().splitlines()[-1][:200] if output.strip() else "no output"


def test_file_text(job, tests) -> str:
    plan = plan_insertion(job.location, job.existing, tests, language=JAVA, framework=job.framework,
                          header=job.header, test_class=job.test_class)
    return apply(job.existing, plan)


