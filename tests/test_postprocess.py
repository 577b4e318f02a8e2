"""Tests of unitune.assured.postprocess: raw completions in, valid, distinct, ranked, named tests out."""

from pathlib import Path

import pytest
from unitune.assured.postprocess import (
    GeneratedTest,
    postprocess,
    postprocess_all,
    rename_test,
    unique_names,
)
from unitune.assured.validity import close_java_brackets, syntax_problems

from unitune.errors import UnituneError
from unitune.focal import functions
from unitune.listing import list_tests
from unitune.prompt import build_prompt
from unitune.source import SourceFile

FIXTURES = Path(__file__).parent / "fixtures" / "generation"


def prompt_for(file_name: str, qualified_name: str, framework: str, **options):
    focal_file = SourceFile.from_path(FIXTURES / file_name)
    function = next(f for f in functions(focal_file) if f.qualified_name == qualified_name)
    module = "wallet" if file_name.endswith(".py") else None
    return build_prompt(focal_file, function, framework=framework, module_import=module, level="fm", **options)


@pytest.fixture(scope="module")
def pytest_prompt():
    return prompt_for("wallet.py", "Wallet.deposit", "pytest")


@pytest.fixture(scope="module")
def unittest_prompt():
    return prompt_for("wallet.py", "Wallet.deposit", "unittest")


@pytest.fixture(scope="module")
def junit_prompt():
    return prompt_for("Wallet.java", "Wallet.deposit", "junit5")


PROMPTS = {"pytest": "pytest_prompt", "unittest": "unittest_prompt", "junit": "junit_prompt"}


def only(prompt, completion, **options) -> GeneratedTest:
    [test] = postprocess_all(prompt, [completion], **options)
    return test


# -- valid completions pass through --------------------------------------------------------------

@pytest.mark.parametrize("kind, completion, expected", [
    (
        "pytest",
        "    wallet = Wallet('ann')\n    assert wallet.deposit(5) == 5\n",
        "def test_deposit():\n    wallet = Wallet('ann')\n    assert wallet.deposit(5) == 5\n",
    ),
    (
        "unittest",
        "        wallet = Wallet('ann')\n        self.assertEqual(wallet.deposit(5), 5)\n",
        "    def test_deposit(self):\n        wallet = Wallet('ann')\n        self.assertEqual(wallet.deposit(5), 5)\n",
    ),
    (
        "junit",
        "        Wallet wallet = new Wallet(0);\n        assertEquals(5, wallet.deposit(5));\n    }\n",
        (
            "    @Test\n    public void testDeposit() throws Exception {\n"
            "        Wallet wallet = new Wallet(0);\n        assertEquals(5, wallet.deposit(5));\n    }\n"
        ),
    ),
])
def test_valid_completions_pass_through(request, kind, completion, expected):
    [test] = postprocess(request.getfixturevalue(PROMPTS[kind]), [completion])
    assert (test.source, test.valid, test.repaired, test.problems, test.assertions) == (expected, True, [], [], 1)
    assert test.calls_focal


# -- cutting -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, completion, expected", [
    (  # the model went on with another test after the dedent
        "pytest",
        "    assert Wallet('a').deposit(1) == 1\n\n\ndef test_other():\n    assert False\n",
        "def test_deposit():\n    assert Wallet('a').deposit(1) == 1\n",
    ),
    (  # prose after the test
        "unittest",
        "        self.assertEqual(Wallet('a').deposit(1), 1)\n\nThis test checks the deposit.\n",
        "    def test_deposit(self):\n        self.assertEqual(Wallet('a').deposit(1), 1)\n",
    ),
    (  # the rest of the test class and more
        "junit",
        "        assertEquals(1, new Wallet(0).deposit(1));\n    }\n}\n\nclass Other {}\n",
        "    @Test\n    public void testDeposit() throws Exception {\n        assertEquals(1, new Wallet(0).deposit(1));\n    }\n",
    ),
    (  # an end-of-text marker in the middle of the body
        "pytest",
        "    assert Wallet('a').deposit(1) == 1\n<|endoftext|>    oops(\n",
        "def test_deposit():\n    assert Wallet('a').deposit(1) == 1\n",
    ),
])
def test_text_after_the_test_is_cut(request, kind, completion, expected):
    test = only(request.getfixturevalue(PROMPTS[kind]), completion)
    assert test.valid and test.source == expected
    assert not any("truncated" in how for how in test.repaired)  # the stop rule cut it: nothing to repair



FIXTURE_TESTS = (
    "import pytest\n\nfrom wallet import Wallet\n\n\n"
    "@pytest.fixture\ndef wallet():\n    return Wallet('a')\n\n\n"
    "def test_parse_amount():\n    assert True\n"
)


def test_with_fixtures_in_the_test_file_the_model_picks_the_parameters():
    """The prompt stops at `def test_deposit(`: what the model writes there is the test's parameters."""
    prompt = prompt_for("wallet.py", "Wallet.deposit", "pytest", existing_test_source=FIXTURE_TESTS)
    assert prompt.text.endswith("    return Wallet('a')\n\n\ndef test_deposit(")
    test = only(prompt, "wallet):\n    assert wallet.deposit(1) == 1\n\n\ndef test_other():\n    assert False\n")
    assert test.valid and test.source == "def test_deposit(wallet):\n    assert wallet.deposit(1) == 1\n"
    assert only(prompt, "):\n    assert Wallet('a').deposit(1) == 1\n").source == (
        "def test_deposit():\n    assert Wallet('a').deposit(1) == 1\n"
    )


def test_a_completion_that_starts_with_another_test_leaves_an_empty_body(pytest_prompt):
    """After the closed `def test_deposit():` line, a line at the `def`'s indentation ends the test."""
    test = only(pytest_prompt, "def test_other():\n    assert Wallet('a').deposit(1) == 1\n")
    assert not test.valid and test.problems == ["the test body is empty"]
    assert postprocess(pytest_prompt, ["def test_other():\n    assert Wallet('a').deposit(1) == 1\n"]) == []


# -- repairs -------------------------------------------------------------------------------------

def test_java_missing_two_closing_braces_are_added(junit_prompt):
    completion = (
        "        Wallet wallet = new Wallet(0);\n"
        "        if (wallet != null) {\n"
        "            assertEquals(5, wallet.deposit(5));\n"
    )
    test = only(junit_prompt, completion)
    assert test.valid
    assert test.repaired == ["added the missing 2 closing braces at the end"]
    assert test.source == (
        "    @Test\n    public void testDeposit() throws Exception {\n"
        "        Wallet wallet = new Wallet(0);\n"
        "        if (wallet != null) {\n"
        "            assertEquals(5, wallet.deposit(5));\n"
        "        }\n"
        "    }\n"
    )
    assert syntax_problems(test.source, "java") == []


def test_java_open_lambda_and_call_are_closed(junit_prompt):
    completion = (
        "        assertThrows(IllegalArgumentException.class, () -> {\n"
        "            new Wallet(0).deposit(-1);\n"
    )
    test = only(junit_prompt, completion)
    assert test.valid and test.assertions == 1
    assert test.source.endswith("            new Wallet(0).deposit(-1);\n        });\n    }\n")


@pytest.mark.parametrize("kind, completion, expected_body", [
    (
        "pytest",
        "    wallet = Wallet('a')\n    wallet.deposit(2)\n    assert wallet.balance == 2\n    assert wallet.deposit(3",
        "    wallet = Wallet('a')\n    wallet.deposit(2)\n    assert wallet.balance == 2\n",
    ),
    (  # a table cut mid-literal at the token limit: the assertion before it stays
        "pytest",
        "    assert Wallet('a').deposit(2) == 2\n    cases = [\n        (1, 1),\n        (2, 2),\n        (3,",
        "    assert Wallet('a').deposit(2) == 2\n",
    ),
    (
        "junit",
        "        Wallet wallet = new Wallet(0);\n        assertEquals(5, wallet.deposit(5));\n        assertEquals(5, wallet.dep",
        "        Wallet wallet = new Wallet(0);\n        assertEquals(5, wallet.deposit(5));\n    }\n",
    ),
])
def test_a_test_cut_off_is_cut_back_to_its_last_complete_statement(request, kind, completion, expected_body):
    prompt = request.getfixturevalue(PROMPTS[kind])
    test = only(prompt, completion)
    assert test.valid, test.problems
    assert test.repaired[0].startswith("cut back to its last complete statement: dropped ")
    body = test.source.split("\n", prompt.prefix.rstrip("\n").count("\n") + 1)[-1]
    assert body == expected_body
    assert syntax_problems(test.source, prompt.language) == []


@pytest.mark.parametrize("kind, completion", [
    # cut inside a multi-line assertion: what is left asserts nothing
    ("unittest", "        wallet = Wallet('a')\n        self.assertEqual(\n            wallet.deposit(2),\n"),
    # a table cut mid-literal before anything asserted
    ("pytest", "    cases = [\n        ('a', 1),\n        ('b', 2),\n        ('c"),
    ("junit", '        Wallet wallet = new Wallet(0);\n        String s = "abc'),
])
def test_a_test_cut_back_to_nothing_that_asserts_is_not_kept(request, kind, completion):
    test = only(request.getfixturevalue(PROMPTS[kind]), completion)
    assert not test.valid
    assert test.problems[-1].endswith("and nothing that asserts was left") or "empty" in test.problems[-1]


def test_a_test_that_ended_on_an_unfinished_line_is_cut_back(pytest_prompt):
    # the model closed the test (a dedent) right after a line it never finished
    test = only(pytest_prompt, "    assert Wallet('a').deposit(2) == 2\n    assert Wallet('b').deposit(\n\n\ndef test_next():\n")
    assert test.valid, test.problems
    assert test.source.endswith("    assert Wallet('a').deposit(2) == 2\n")


def test_truncation_that_leaves_an_empty_body_is_invalid(pytest_prompt):
    test = only(pytest_prompt, "    wallet = Wallet('a'")
    assert not test.valid and test.problems


def test_a_complete_test_with_an_error_inside_is_not_salvaged(pytest_prompt):
    test = only(pytest_prompt, "    wallet = Wallet('a'\n    assert wallet\n\n\ndef test_next():\n    pass\n")
    assert not test.valid
    assert test.problems and test.repaired == []


@pytest.mark.parametrize("kind, completion", [
    ("pytest", "    pass\n"),
    ("pytest", "    ...\n"),
    ("pytest", '    """Deposits money."""\n    pass\n'),
    ("pytest", "    # TODO\n    pass\n"),
    ("unittest", "        pass\n"),
    ("junit", "    }\n"),
    ("junit", "        // nothing yet\n    }\n"),
])
def test_empty_tests_are_dropped(request, kind, completion):
    prompt = request.getfixturevalue(PROMPTS[kind])
    assert postprocess(prompt, [completion]) == []
    assert only(prompt, completion).problems == ["the test body is empty"]


def test_unparseable_python_is_reported_with_its_line(pytest_prompt):
    test = only(pytest_prompt, "    assert Wallet(\n1 2)\n\n\nx = 1\n")
    assert not test.valid
    assert test.problems[0].startswith("line ")


def test_what_python_rejects_but_tree_sitter_accepts_is_not_a_valid_test(pytest_prompt):
    """A `with` block left without a body: tree-sitter parses it, Python does not."""
    complete = "    assert Wallet('a')\n    with pytest.raises(TypeError):\n\n\ndef test_next():\n    pass\n"
    test = only(pytest_prompt, complete)
    assert not test.valid
    assert test.problems == ["line 3: Python rejects it (expected an indented block after 'with' statement on line 3)"]
    # cut off by the token limit instead: the dangling line is dropped, as for any truncated test
    test = only(pytest_prompt, "    assert Wallet('a')\n    with pytest.raises(TypeError):\n")
    assert test.valid and "with pytest" not in test.source


def test_an_insertion_that_would_break_the_test_file_is_refused(tmp_path):
    from unitune.assured.delivery import check_whole_file
    from unitune.errors import GenerationFailed
    from unitune.insertion import plan_insertion
    from unitune.placement import locate_test_file

    (tmp_path / "wallet.py").write_text("def f():\n    return 1\n")
    location = locate_test_file(tmp_path / "wallet.py", tmp_path)
    existing = "from wallet import f\n\n\ndef test_f():\n    assert f() == 1\n"
    broken = plan_insertion(location, existing, [("test_g", "def test_g():\n    with x:\n")], language="python",
                            framework="pytest", header="")
    with pytest.raises(GenerationFailed, match="would leave .* unparsable .*nothing was inserted"):
        check_whole_file(existing, broken, "python")
    fine = plan_insertion(location, existing, [("test_g", "def test_g():\n    assert f()\n")], language="python",
                          framework="pytest", header="")
    check_whole_file(existing, fine, "python")
    already_broken = "def broken(:\n"
    onto_broken = plan_insertion(location, already_broken, [("test_g", "def test_g():\n    assert f()\n")],
                                 language="python", framework="pytest", header="")
    check_whole_file(already_broken, onto_broken, "python")  # the user's own breakage: not refused


# -- duplicates, ranking, names --------------------------------------------------------------------

def test_duplicates_are_dropped(pytest_prompt):
    completions = [
        "    assert Wallet('a').deposit(1) == 1\n",
        "    assert Wallet('a').deposit(1)   ==   1\n\n",
        "    assert Wallet( 'a' ).deposit( 1 ) == 1\n",
        "    assert Wallet('a').deposit(2) == 2\n",
    ]
    everything = postprocess_all(pytest_prompt, completions)
    kept = [test for test in everything if test.kept]
    assert [test.index for test in kept] == [0, 3]
    assert {test.index: test.duplicate_of for test in everything if not test.kept} == {1: 0, 2: 0}
    assert all(test.valid for test in everything)


def test_ranking_prefers_tests_that_assert(pytest_prompt):
    completions = [
        "    Wallet('a').deposit(1)\n",  # no assertion
        "    wallet = Wallet('a')\n    assert wallet.deposit(1) == 1\n",
        (
            "    wallet = Wallet('a')\n    assert wallet.deposit(1) == 1\n    assert wallet.balance == 1\n"
            "    with pytest.raises(ValueError):\n        wallet.deposit(0)\n"
        ),
        "    assert parse_amount('1') == 1\n",  # asserts, but not about deposit
        # repeats itself: the test ends before the repeat, and is then the second one again
        "    wallet = Wallet('a')\n    assert wallet.deposit(1) == 1\n    assert wallet.deposit(1) == 1\n",
    ]
    ranked = postprocess(pytest_prompt, completions)
    assert [test.index for test in ranked] == [2, 1, 3, 0]
    assert [test.assertions for test in ranked] == [3, 1, 1, 0]
    assert [test.calls_focal for test in ranked] == [True, True, False, True]
    assert [test.name for test in ranked] == ["test_deposit"] + [f"test_deposit_{n}" for n in range(2, 5)]
    assert ranked == sorted(ranked, key=lambda test: -test.score)
    assert postprocess_all(pytest_prompt, completions)[-1].duplicate_of == 1


def test_java_ranking_counts_assertion_calls(junit_prompt):
    completions = [
        "        new Wallet(0).deposit(1);\n    }\n",
        (
            "        Wallet w = new Wallet(0);\n        assertEquals(1, w.deposit(1));\n"
            "        assertThrows(IllegalArgumentException.class, () -> w.deposit(0));\n    }\n"
        ),
    ]
    ranked = postprocess(junit_prompt, completions)
    assert [(test.index, test.assertions, test.name) for test in ranked] == [(1, 2, "testDeposit"), (0, 0, "testDeposit2")]


def test_names_are_unique_against_the_existing_test_file(pytest_prompt, junit_prompt):
    existing = SourceFile((FIXTURES / "existing_test_wallet.txt").read_text(), "python")
    names = {test.name for test in list_tests(existing)}
    assert names == {"test_parse_amount", "test_deposit"}
    ranked = postprocess(pytest_prompt, [
        "    assert Wallet('a').deposit(1) == 1\n", "    assert Wallet('a').deposit(2) == 2\n",
    ], existing_names=names)
    assert [test.name for test in ranked] == ["test_deposit_2", "test_deposit_3"]
    assert ranked[0].source.startswith("def test_deposit_2():\n")
    assert "test_deposit_3():" in ranked[1].source

    java = SourceFile((FIXTURES / "ExistingWalletTest.txt").read_text(), "java")
    java_names = {test.name for test in list_tests(java)} | {"testDeposit"}
    [test] = postprocess(junit_prompt, ["        assertEquals(1, new Wallet(0).deposit(1));\n    }\n"], java_names)
    assert test.name == "testDeposit2"
    assert "public void testDeposit2() throws Exception {" in test.source


@pytest.mark.parametrize("name, language, taken, expected", [
    ("test_deposit", "python", set(), "test_deposit"),
    ("test_deposit", "python", {"test_deposit", "test_deposit_2"}, "test_deposit_3"),
    ("testDeposit", "java", {"testDeposit"}, "testDeposit2"),
    ("testLog10", "java", {"testLog10"}, "testLog10_2"),  # `testLog102` would read as another number
])
def test_unique_names(name, language, taken, expected):
    opening = f"def {name}():\n    assert x\n" if language == "python" else f"    @Test\n    void {name}() {{\n        f();\n    }}\n"
    test = GeneratedTest(name, opening, language, True)
    [renamed] = unique_names([test], taken)
    assert renamed.name == expected
    assert expected in renamed.source and (expected == name or test.source != renamed.source)


def test_rename_touches_only_the_declaration():
    source = "def test_a():\n    test_a_helper()\n    assert test_a\n"
    assert rename_test(source, "test_a", "test_a_2", "python") == "def test_a_2():\n    test_a_helper()\n    assert test_a\n"
    with pytest.raises(UnituneError):
        rename_test(source, "test_b", "test_c", "python")


# -- the building blocks -------------------------------------------------------------------------

@pytest.mark.parametrize("source, expected", [
    ("void f() {\n    g(\"}{\", '{');\n", "void f() {\n    g(\"}{\", '{');\n}\n"),
    ("void f() {\n    // { not this one\n    /* { nor this */\n", "void f() {\n    // { not this one\n    /* { nor this */\n}\n"),
    ("void f() {\n    int[] a = {1, 2};\n    call(a, x", "void f() {\n    int[] a = {1, 2};\n    call(a, x);\n}\n"),
    ("void f() {\n    g(1 // why\n", "void f() {\n    g(1 // why\n    );\n}\n"),
])
def test_close_java_brackets_ignores_strings_and_comments(source, expected):
    assert close_java_brackets(source)[0] == expected


@pytest.mark.parametrize("source", ["void f() {\n    g(];\n", 'void f() {\n    g("abc\n', "void f() {\n    /* open"])
def test_close_java_brackets_gives_up_when_appending_cannot_help(source):
    assert close_java_brackets(source) is None


def test_syntax_problems_checks_one_function():
    assert syntax_problems("    def test_a(self):\n        assert 1\n", "python") == []
    assert syntax_problems("def test_a():\n    assert 1\ndef test_b():\n    assert 2\n", "python") == [
        "not exactly one test function"
    ]
    assert syntax_problems("    @Test\n    void a() {\n        f();\n    }\n", "java") == []
    assert syntax_problems("    @Test\n    void a() {\n        f()\n    }\n", "java")[0].startswith("line 3:")


def test_kept_tests_serialize(pytest_prompt):
    [test] = postprocess(pytest_prompt, ["    assert Wallet('a').deposit(1) == 1\n"])
    data = test.to_json()
    assert data["kept"] is True and data["name"] == "test_deposit" and data["assertions"] == 1


def test_unknown_language_is_refused(pytest_prompt):
    from dataclasses import replace

    with pytest.raises(UnituneError):
        postprocess(replace(pytest_prompt, language="cobol"), ["x"])
