"""The copy a pairs file's test split is judged in: the split's developer tests are not in it."""

from __future__ import annotations

import json
from pathlib import Path

from unitune.evaluation.evaluation import load_pairs_problems
from unitune.evaluation.held_out import held_out_copy

MODULE = "def area(w, h):\n    return w * h\n\n\ndef perimeter(w, h):\n    return 2 * (w + h)\n"
TESTS = '''import pytest

from shapes import area, perimeter


@pytest.fixture
def square():
    return 3


def test_area(square):
    assert area(square, square) == 9


def test_area_zero():
    assert area(0, 5) == 0


def test_perimeter():
    assert perimeter(1, 2) == 6
'''


def _pair(test_name: str, focal: str, split: str, code: str = "") -> dict:
    return {"language": "python", "test_file": "tests/test_shapes.py", "test_name": test_name,
            "focal_file": "shapes.py", "focal_name": focal, "focal_qualified_name": focal, "test_code": code,
            "focal_code": "", "prompt": "", "completion": "", "split": split}


def _project(root: Path) -> Path:
    (root / "tests").mkdir(parents=True)
    (root / "shapes.py").write_text(MODULE)
    (root / "tests" / "test_shapes.py").write_text(TESTS)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "python").write_text("")
    return root


def test_the_split_s_tests_are_taken_out_and_the_rest_of_their_file_stays(tmp_path):
    repo = _project(tmp_path / "repo")
    held = [_pair("test_area", "area", "test"), _pair("test_area_zero", "area", "test")]

    copy = held_out_copy(repo, held, tmp_path / "judged")

    text = (copy.root / "tests" / "test_shapes.py").read_text()
    assert "def test_area" not in text  # neither of the function's tests: the model would copy them
    assert "def test_perimeter" in text and "def square" in text and "from shapes import" in text
    compile(text, "test_shapes.py", "exec")  # still a module pytest can collect
    assert (copy.removed_tests, copy.test_files) == (2, 1)
    assert (repo / "tests" / "test_shapes.py").read_text() == TESTS  # the project itself is untouched
    assert not (copy.root / ".git").exists()
    assert not (copy.root / ".venv").exists()  # the project's interpreter stays where it is


def test_a_function_with_several_tests_is_one_problem_judged_against_all_of_them(tmp_path):
    repo = _project(tmp_path / "repo")
    pairs = [_pair("test_area", "area", "test", "def test_area(square): ..."),
             _pair("test_area_zero", "area", "test", "def test_area_zero(): ..."),
             _pair("test_perimeter", "perimeter", "train", "def test_perimeter(): ...")]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(pair) + "\n" for pair in pairs))

    problems, held = load_pairs_problems(path, repo)

    assert [problem.id for problem, _ in problems] == ["shapes.py::area"]
    assert problems[0][0].reference_tests == ("def test_area(square): ...", "def test_area_zero(): ...")
    assert [pair["test_name"] for pair in held] == ["test_area", "test_area_zero"]


UNITTEST_FILE = '''import unittest

from shapes import area, perimeter


class TestArea(unittest.TestCase):
    def test_area(self):
        self.assertEqual(area(3, 3), 9)

    @unittest.skipIf(False, "always runs")
    def test_area_zero(self):
        self.assertEqual(area(0, 5), 0)


class TestPerimeter(unittest.TestCase):
    def setUp(self):
        self.sides = (1, 2)

    def test_perimeter(self):
        self.assertEqual(perimeter(*self.sides), 6)

    def test_perimeter_square(self):
        self.assertEqual(perimeter(2, 2), 8)


if __name__ == "__main__":
    unittest.main()
'''


def test_the_copy_reads_as_a_file_a_person_left_without_those_tests(tmp_path):
    repo = _project(tmp_path / "repo")
    (repo / "tests" / "test_shapes.py").write_text(UNITTEST_FILE)
    held = [_pair("TestArea.test_area", "area", "test"), _pair("TestArea.test_area_zero", "area", "test"),
            _pair("TestPerimeter.test_perimeter", "perimeter", "test")]

    copy = held_out_copy(repo, held, tmp_path / "judged")

    # the emptied class keeps one `pass` (it must parse), the other keeps its set-up and its other test,
    # and no run of placeholders or blank lines is left where the tests were
    assert (copy.root / "tests" / "test_shapes.py").read_text() == '''import unittest

from shapes import area, perimeter


class TestArea(unittest.TestCase):
    pass


class TestPerimeter(unittest.TestCase):
    def setUp(self):
        self.sides = (1, 2)

    def test_perimeter_square(self):
        self.assertEqual(perimeter(2, 2), 8)


if __name__ == "__main__":
    unittest.main()
'''
