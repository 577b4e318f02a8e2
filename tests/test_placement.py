"""Tests of test file <-> focal file mapping (unitune.placement, unitune.focal_candidates), the
project's layout and walk (unitune.project_layout, unitune.project_walk) and framework detection."""

from pathlib import Path

import pytest

from unitune.focal_candidates import focal_candidates_for_test
from unitune.frameworks import FRAMEWORKS, JUNIT4, JUNIT5, PYTEST, UNITTEST, detect_framework
from unitune.errors import BadFileError
from unitune.placement import TestLocation, locate_test_file, locate_test_path
from unitune.project_layout import find_project_root, python_module_name
from unitune.project_walk import project_files, project_folders

UNITTEST_TEST = "import unittest\n\nclass TestThing(unittest.TestCase):\n    def test_a(self):\n        pass\n"
PYTEST_TEST = "import pytest\n\ndef test_a():\n    pass\n"
JUNIT5_TEST = "package com.x;\nimport org.junit.jupiter.api.Test;\nclass OtherTest { @Test void a() {} }\n"
JUNIT4_TEST = "package com.x;\nimport org.junit.Test;\npublic class OtherTest { @Test public void a() {} }\n"


def tree(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative path -> text; a path ending in `/` is a folder) under `root`."""
    for name, text in files.items():
        path = root / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def java_class(package: str, name: str) -> str:
    return f"package {package};\n\npublic class {name} {{ }}\n" if package else f"public class {name} {{ }}\n"


def test_frameworks_constants():
    assert FRAMEWORKS == ("pytest", "unittest", "junit5", "junit4")


# -- project root --------------------------------------------------------------------------------

@pytest.mark.parametrize("marker", [".git/", "pyproject.toml", "setup.py", "setup.cfg", "pom.xml", "build.gradle"])
def test_project_root_is_nearest_marker(tmp_path, marker):
    tree(tmp_path, {marker: "", "pkg/sub/mod.py": ""})
    assert find_project_root(tmp_path / "pkg/sub/mod.py") == tmp_path


def test_project_root_without_marker_is_the_file_folder(tmp_path):
    tree(tmp_path, {"a/b/mod.py": ""})
    assert find_project_root(tmp_path / "a/b/mod.py") == tmp_path / "a/b"


# -- walking the project -------------------------------------------------------------------------

def test_project_walk_skips_what_is_not_the_projects_own(tmp_path):
    tree(tmp_path, {
        "pyproject.toml": "", "pkg/mod.py": "", "pkg/notes.txt": "", "pkg/build/steps.py": "",
        ".git/hooks/hook.py": "", ".venv/lib/site.py": "", "node_modules/x/x.py": "", "__pycache__/mod.py": "",
        "myenv/pyvenv.cfg": "", "myenv/lib.py": "", "pkg.egg-info/x.py": "", "build/lib/mod.py": "",
        "vendor/lib.py": "", ".github/scripts/release.py": "",
    })
    found = [path.relative_to(tmp_path).as_posix() for path in project_files(tmp_path, suffixes=(".py",))]
    assert found == ["pkg/mod.py", "pkg/build/steps.py"]  # `build` is build output only beside a build file
    copied = {folder.relative_to(tmp_path).as_posix() for folder, _ in project_folders(tmp_path, copying=True)}
    assert {".github", "vendor", "pkg/build"} <= copied  # what the project's tests may read or import
    assert not copied & {".git", ".venv", "node_modules", "__pycache__", "myenv", "pkg.egg-info", "build"}


# -- module names --------------------------------------------------------------------------------

@pytest.mark.parametrize("files, focal, expected", [
    ({"pkg/__init__.py": "", "pkg/sub/__init__.py": "", "pkg/sub/mod.py": ""}, "pkg/sub/mod.py", "pkg.sub.mod"),
    ({"pkg/__init__.py": "", "pkg/mod.py": ""}, "pkg/mod.py", "pkg.mod"),
    ({"pkg/__init__.py": ""}, "pkg/__init__.py", "pkg"),
    ({"mod.py": ""}, "mod.py", "mod"),
    ({"ns/sub/mod.py": ""}, "ns/sub/mod.py", "ns.sub.mod"),  # namespace packages from the root
    ({"lib/pkg/__init__.py": "", "lib/pkg/mod.py": ""}, "lib/pkg/mod.py", "pkg.mod"),
    ({"src/pkg/__init__.py": "", "src/pkg/mod.py": ""}, "src/pkg/mod.py", "pkg.mod"),
    ({"src/ns/pkg/__init__.py": "", "src/ns/pkg/mod.py": ""}, "src/ns/pkg/mod.py", "ns.pkg.mod"),
    ({"src/mod.py": ""}, "src/mod.py", "mod"),
])
def test_python_module_name(tmp_path, files, focal, expected):
    tree(tmp_path, {"pyproject.toml": "", **files})
    assert python_module_name(tmp_path / focal, tmp_path) == expected
    assert locate_test_file(tmp_path / focal).module_import == expected


# -- Python: existing test files ------------------------------------------------------------------

PKG = {"pyproject.toml": "", "pkg/__init__.py": "", "pkg/sub/__init__.py": "", "pkg/sub/mod.py": ""}


@pytest.mark.parametrize("test_file", [
    "tests/test_mod.py",
    "tests/pkg/sub/test_mod.py",
    "tests/sub/test_mod.py",
    "test/test_mod.py",
    "test/pkg/sub/test_mod.py",
    "tests/mod_test.py",
    "pkg/sub/test_mod.py",
    "pkg/sub/mod_test.py",
    "pkg/sub/tests/test_mod.py",
    "tests/unit/test_mod.py",
    "tests/unit/sub/test_mod.py",
    "test/test_sub/test_mod.py",  # CPython's layout: test/test_email/test_utils.py tests email/utils.py
    "tests/sub_tests/test_mod.py",
])
def test_python_existing_test_file(tmp_path, test_file):
    tree(tmp_path, {**PKG, test_file: PYTEST_TEST})
    location = locate_test_file(tmp_path / "pkg/sub/mod.py")
    assert location == TestLocation(tmp_path / test_file, True, PYTEST, "pkg.sub.mod", None)


def test_python_mirror_wins_over_flat(tmp_path):
    tree(tmp_path, {**PKG, "tests/test_mod.py": "", "tests/pkg/sub/test_mod.py": ""})
    assert locate_test_file(tmp_path / "pkg/sub/mod.py").path == tmp_path / "tests/pkg/sub/test_mod.py"


@pytest.mark.parametrize("other", ["tests/other/test_mod.py", "test/test_other/test_mod.py"])
def test_python_test_of_another_package_is_not_taken(tmp_path, other):
    tree(tmp_path, {**PKG, "pkg/other/__init__.py": "", other: ""})
    location = locate_test_file(tmp_path / "pkg/sub/mod.py")
    assert not location.exists
    assert location.path != tmp_path / other
    if other.startswith("tests/"):
        assert location.path == tmp_path / "tests/sub/test_mod.py"


@pytest.mark.parametrize("test_file", ["tests/test_mod.py", "tests/pkg/test_mod.py"])
def test_python_src_layout_existing(tmp_path, test_file):
    tree(tmp_path, {"pyproject.toml": "", "src/pkg/__init__.py": "", "src/pkg/mod.py": "", test_file: ""})
    location = locate_test_file(tmp_path / "src/pkg/mod.py")
    assert (location.path, location.exists, location.module_import) == (tmp_path / test_file, True, "pkg.mod")


# -- Python: new test files -----------------------------------------------------------------------

def test_python_new_file_without_tests_folder(tmp_path):
    tree(tmp_path, PKG)
    location = locate_test_file(tmp_path / "pkg/sub/mod.py")
    assert location == TestLocation(tmp_path / "tests/test_mod.py", False, PYTEST, "pkg.sub.mod", None)


def test_python_new_file_in_flat_tests_folder(tmp_path):
    tree(tmp_path, {**PKG, "tests/test_other.py": PYTEST_TEST})
    assert locate_test_file(tmp_path / "pkg/sub/mod.py").path == tmp_path / "tests/test_mod.py"


def test_python_new_file_prefers_tests_over_test(tmp_path):
    tree(tmp_path, {**PKG, "tests/": "", "test/": ""})
    assert locate_test_file(tmp_path / "pkg/sub/mod.py").path == tmp_path / "tests/test_mod.py"


def test_python_new_file_in_existing_test_folder(tmp_path):
    tree(tmp_path, {**PKG, "test/": ""})
    assert locate_test_file(tmp_path / "pkg/sub/mod.py").path == tmp_path / "test/test_mod.py"


def test_python_new_file_mirrors_full_package_path(tmp_path):
    tree(tmp_path, {**PKG, "tests/pkg/test_core.py": ""})
    assert locate_test_file(tmp_path / "pkg/sub/mod.py").path == tmp_path / "tests/pkg/sub/test_mod.py"


def test_python_new_file_mirrors_package_path_without_top_package(tmp_path):
    tree(tmp_path, {**PKG, "pkg/other/__init__.py": "", "tests/other/test_x.py": ""})
    assert locate_test_file(tmp_path / "pkg/sub/mod.py").path == tmp_path / "tests/sub/test_mod.py"


def test_python_new_file_src_layout(tmp_path):
    tree(tmp_path, {"pyproject.toml": "", "src/pkg/__init__.py": "", "src/pkg/mod.py": "", "tests/pkg/": ""})
    assert locate_test_file(tmp_path / "src/pkg/mod.py").path == tmp_path / "tests/pkg/test_mod.py"


def test_python_new_file_src_layout_flat(tmp_path):
    tree(tmp_path, {"pyproject.toml": "", "src/pkg/__init__.py": "", "src/pkg/mod.py": ""})
    assert locate_test_file(tmp_path / "src/pkg/mod.py").path == tmp_path / "tests/test_mod.py"


def test_python_new_file_follows_suffix_naming(tmp_path):
    tree(tmp_path, {**PKG, "tests/a_test.py": "", "tests/b_test.py": ""})
    assert locate_test_file(tmp_path / "pkg/sub/mod.py").path == tmp_path / "tests/mod_test.py"


def test_python_new_file_beside_when_tests_live_beside(tmp_path):
    tree(tmp_path, {**PKG, "pkg/sub/test_other.py": ""})
    assert locate_test_file(tmp_path / "pkg/sub/mod.py").path == tmp_path / "pkg/sub/test_mod.py"


def test_python_new_file_in_package_tests_folder(tmp_path):
    tree(tmp_path, {**PKG, "pkg/sub/tests/": ""})
    assert locate_test_file(tmp_path / "pkg/sub/mod.py").path == tmp_path / "pkg/sub/tests/test_mod.py"


def test_python_test_dir_setting(tmp_path):
    tree(tmp_path, {**PKG, "tests/": ""})
    location = locate_test_file(tmp_path / "pkg/sub/mod.py", test_dir="qa")
    assert location.path == tmp_path / "qa/test_mod.py"


# -- Python: frameworks ---------------------------------------------------------------------------

def test_python_existing_unittest_file(tmp_path):
    tree(tmp_path, {**PKG, "tests/test_mod.py": UNITTEST_TEST})
    location = locate_test_file(tmp_path / "pkg/sub/mod.py")
    assert (location.framework, location.test_class_name) == (UNITTEST, "TestThing")


def test_python_file_importing_unittest_with_pytest_tests_is_pytest(tmp_path):
    tree(tmp_path, {"tests/test_mod.py": "import unittest.mock\n\ndef test_a():\n    pass\n"})
    assert detect_framework(tmp_path / "tests/test_mod.py", tmp_path) == PYTEST


def test_python_file_without_tests_uses_its_imports(tmp_path):
    tree(tmp_path, {"tests/test_a.py": "import unittest\n", "tests/test_b.py": "import pytest\n"})
    assert detect_framework(tmp_path / "tests/test_a.py", tmp_path) == UNITTEST
    assert detect_framework(tmp_path / "tests/test_b.py", tmp_path) == PYTEST


def test_python_new_file_follows_sibling_tests(tmp_path):
    tree(tmp_path, {**PKG, "tests/test_x.py": UNITTEST_TEST, "tests/test_y.py": UNITTEST_TEST, "tests/test_z.py": PYTEST_TEST})
    location = locate_test_file(tmp_path / "pkg/sub/mod.py")
    assert (location.exists, location.framework, location.test_class_name) == (False, UNITTEST, "TestMod")


def test_python_new_file_follows_tests_deeper_in_the_tree(tmp_path):
    tree(tmp_path, {**PKG, "tests/pkg/other/test_x.py": UNITTEST_TEST})
    assert detect_framework(tmp_path / "tests/test_new.py", tmp_path) == UNITTEST


@pytest.mark.parametrize("files, expected", [
    ({}, PYTEST),
    ({"pytest.ini": "[pytest]\n"}, PYTEST),
    ({"setup.cfg": "[tool:pytest]\ntestpaths = tests\n"}, PYTEST),
    ({"tox.ini": "[testenv]\ncommands = python -m unittest discover\n"}, UNITTEST),
    ({"setup.py": "setup(name='x', test_suite='tests')\n"}, UNITTEST),
    ({"tox.ini": "[testenv]\ncommands = python -m unittest\n[pytest]\n"}, PYTEST),
])
def test_python_framework_from_configuration(tmp_path, files, expected):
    tree(tmp_path, {"pyproject.toml": "", **files})
    assert detect_framework(tmp_path / "tests/test_new.py", tmp_path) == expected


# -- Java -----------------------------------------------------------------------------------------

MAVEN = {"pom.xml": "<project/>", "src/main/java/com/x/Foo.java": java_class("com.x", "Foo")}


def test_java_maven_new_file(tmp_path):
    tree(tmp_path, MAVEN)
    location = locate_test_file(tmp_path / "src/main/java/com/x/Foo.java")
    assert location == TestLocation(tmp_path / "src/test/java/com/x/FooTest.java", False, JUNIT5, "com.x.Foo", "FooTest")


@pytest.mark.parametrize("name", ["FooTest", "FooTests", "FooIT", "TestFoo", "FooTestCase"])
def test_java_maven_existing_file(tmp_path, name):
    tree(tmp_path, {**MAVEN, f"src/test/java/com/x/{name}.java": JUNIT4_TEST})
    location = locate_test_file(tmp_path / "src/main/java/com/x/Foo.java")
    assert location == TestLocation(tmp_path / f"src/test/java/com/x/{name}.java", True, JUNIT4, "com.x.Foo", name)


def test_java_test_suffix_preferred_over_it(tmp_path):
    tree(tmp_path, {**MAVEN, "src/test/java/com/x/FooIT.java": "", "src/test/java/com/x/FooTest.java": ""})
    assert locate_test_file(tmp_path / "src/main/java/com/x/Foo.java").path.name == "FooTest.java"


def test_java_package_comes_from_the_declaration(tmp_path):
    tree(tmp_path, {"pom.xml": "", "src/main/java/Foo.java": "/* package not.this; */\n" + java_class("com.x", "Foo")})
    location = locate_test_file(tmp_path / "src/main/java/Foo.java")
    assert (location.path, location.module_import) == (tmp_path / "src/test/java/com/x/FooTest.java", "com.x.Foo")


def test_java_existing_test_in_unmirrored_folder(tmp_path):
    tree(tmp_path, {**MAVEN, "src/test/java/FooTest.java": "package com.x;\nclass FooTest {}\n"})
    location = locate_test_file(tmp_path / "src/main/java/com/x/Foo.java")
    assert (location.path, location.exists) == (tmp_path / "src/test/java/FooTest.java", True)


def test_java_multi_module_gradle(tmp_path):
    tree(tmp_path, {
        "settings.gradle": "", ".git/": "",
        "build.gradle": "dependencies { testImplementation 'junit:junit:4.13.2' }",
        "core/build.gradle": "plugins { id 'java' }",
        "core/src/main/java/com/x/Foo.java": java_class("com.x", "Foo"),
    })
    location = locate_test_file(tmp_path / "core/src/main/java/com/x/Foo.java")
    assert location.path == tmp_path / "core/src/test/java/com/x/FooTest.java"
    assert location.framework == JUNIT4  # declared in the parent build


def test_java_non_maven_beside(tmp_path):
    tree(tmp_path, {"build.xml": "", ".git/": "", "src/com/x/Foo.java": java_class("com.x", "Foo")})
    assert locate_test_file(tmp_path / "src/com/x/Foo.java").path == tmp_path / "src/com/x/FooTest.java"


def test_java_non_maven_test_folder_mirror(tmp_path):
    tree(tmp_path, {".git/": "", "src/com/x/Foo.java": java_class("com.x", "Foo"), "test/": ""})
    location = locate_test_file(tmp_path / "src/com/x/Foo.java")
    assert (location.path, location.exists) == (tmp_path / "test/com/x/FooTest.java", False)


def test_java_non_maven_existing_beside(tmp_path):
    tree(tmp_path, {".git/": "", "src/com/x/Foo.java": java_class("com.x", "Foo"), "src/com/x/FooTest.java": JUNIT4_TEST, "test/": ""})
    location = locate_test_file(tmp_path / "src/com/x/Foo.java")
    assert (location.path, location.exists, location.framework) == (tmp_path / "src/com/x/FooTest.java", True, JUNIT4)


@pytest.mark.parametrize("siblings, expected", [
    ({"src/test/java/com/x/OtherTest.java": JUNIT4_TEST}, JUNIT4),
    ({"src/test/java/com/x/OtherTest.java": JUNIT5_TEST}, JUNIT5),
    ({"src/test/java/com/y/DeepTest.java": JUNIT4_TEST}, JUNIT4),
])
def test_java_framework_from_sibling_tests(tmp_path, siblings, expected):
    tree(tmp_path, {**MAVEN, **siblings})
    assert locate_test_file(tmp_path / "src/main/java/com/x/Foo.java").framework == expected


@pytest.mark.parametrize("build, expected", [
    ({"pom.xml": "<dependency><groupId>junit</groupId><artifactId>junit</artifactId></dependency>"}, JUNIT4),
    ({"pom.xml": "<dependency><groupId>org.junit.jupiter</groupId><artifactId>junit-jupiter</artifactId></dependency>"}, JUNIT5),
    ({"build.gradle": "testImplementation 'junit:junit:4.13'"}, JUNIT4),
    ({"build.gradle": "testImplementation 'org.junit.jupiter:junit-jupiter:5.10.0'"}, JUNIT5),
    ({"pom.xml": "<project/>"}, JUNIT5),
])
def test_java_framework_from_build_file(tmp_path, build, expected):
    tree(tmp_path, {"src/main/java/com/x/Foo.java": java_class("com.x", "Foo"), **build})
    assert locate_test_file(tmp_path / "src/main/java/com/x/Foo.java").framework == expected


def test_java_existing_file_imports_beat_build_file(tmp_path):
    tree(tmp_path, {
        "pom.xml": "<artifactId>junit</artifactId>", "src/main/java/com/x/Foo.java": java_class("com.x", "Foo"),
        "src/test/java/com/x/FooTest.java": JUNIT5_TEST,
    })
    assert detect_framework(tmp_path / "src/test/java/com/x/FooTest.java") == JUNIT5


# -- test file -> focal files ---------------------------------------------------------------------

def test_focal_for_flat_python_test(tmp_path):
    tree(tmp_path, {**PKG, "tests/test_mod.py": ""})
    assert focal_candidates_for_test(tmp_path / "tests/test_mod.py", tmp_path) == [tmp_path / "pkg/sub/mod.py"]


def test_focal_for_src_layout(tmp_path):
    tree(tmp_path, {"pyproject.toml": "", "src/pkg/__init__.py": "", "src/pkg/mod.py": "", "tests/pkg/test_mod.py": ""})
    assert focal_candidates_for_test(tmp_path / "tests/pkg/test_mod.py") == [tmp_path / "src/pkg/mod.py"]


def test_focal_mirror_disambiguates_same_names(tmp_path):
    tree(tmp_path, {
        "pyproject.toml": "", "pkg/__init__.py": "", "pkg/a/__init__.py": "", "pkg/a/utils.py": "",
        "pkg/b/__init__.py": "", "pkg/b/utils.py": "", "tests/b/test_utils.py": "", "tests/test_utils.py": "",
    })
    assert focal_candidates_for_test(tmp_path / "tests/b/test_utils.py") == [tmp_path / "pkg/b/utils.py"]
    flat = focal_candidates_for_test(tmp_path / "tests/test_utils.py")
    assert sorted(flat) == [tmp_path / "pkg/a/utils.py", tmp_path / "pkg/b/utils.py"]


@pytest.mark.parametrize("test_file", ["pkg/sub/test_mod.py", "pkg/sub/mod_test.py", "pkg/sub/tests/test_mod.py"])
def test_focal_beside_wins(tmp_path, test_file):
    tree(tmp_path, {**PKG, "other/mod.py": "", test_file: ""})
    assert focal_candidates_for_test(tmp_path / test_file, tmp_path) == [tmp_path / "pkg/sub/mod.py"]


def test_focal_by_shortened_name_and_package(tmp_path):
    tree(tmp_path, {"pyproject.toml": "", "shop/account.py": "", "shop/cart/__init__.py": ""})
    assert focal_candidates_for_test(tmp_path / "tests/test_account_deposit.py") == [tmp_path / "shop/account.py"]
    assert focal_candidates_for_test(tmp_path / "tests/test_cart.py") == [tmp_path / "shop/cart/__init__.py"]


def test_focal_none_found_and_test_helpers_ignored(tmp_path):
    tree(tmp_path, {"pyproject.toml": "", "tests/helpers.py": "", "tests/test_helpers.py": "", ".venv/lib/helpers.py": ""})
    assert focal_candidates_for_test(tmp_path / "tests/test_helpers.py") == []


def test_focal_for_java_test(tmp_path):
    tree(tmp_path, {
        "pom.xml": "", "src/main/java/com/x/Foo.java": java_class("com.x", "Foo"),
        "src/main/java/com/y/Foo.java": java_class("com.y", "Foo"),
        "src/test/java/com/x/FooTest.java": JUNIT5_TEST.replace("OtherTest", "FooTest"),
        "src/test/java/com/x/TestFoo.java": "package com.x;\n",
        "src/test/java/com/x/FooIT.java": "package com.x;\n",
    })
    expected = [tmp_path / "src/main/java/com/x/Foo.java"]
    for name in ("FooTest", "TestFoo", "FooIT"):
        assert focal_candidates_for_test(tmp_path / f"src/test/java/com/x/{name}.java") == expected


def test_focal_for_java_prefers_same_module(tmp_path):
    tree(tmp_path, {
        ".git/": "", "a/pom.xml": "", "b/pom.xml": "",
        "a/src/main/java/com/x/Foo.java": java_class("com.x", "Foo"),
        "b/src/main/java/com/x/Foo.java": java_class("com.x", "Foo"),
        "b/src/test/java/com/x/FooTest.java": "package com.x;\n",
    })
    files = list(project_files(tmp_path, suffixes=(".java",)))
    found = focal_candidates_for_test(tmp_path / "b/src/test/java/com/x/FooTest.java", tmp_path, files=files)
    assert found == [tmp_path / "b/src/main/java/com/x/Foo.java", tmp_path / "a/src/main/java/com/x/Foo.java"]


def test_a_test_file_that_links_to_itself_is_refused_with_a_message(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / "mod.py").write_text("def add(a, b):\n    return a + b\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_mod.py").symlink_to("test_mod.py")
    with pytest.raises(BadFileError, match="a symbolic link that loops or leads nowhere"):
        locate_test_file(tmp_path / "mod.py", tmp_path)


def test_a_test_file_that_links_out_of_the_project_is_never_written_through(tmp_path):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere.py"
    (project / ".git").mkdir(parents=True)
    (project / "mod.py").write_text("def add(a, b):\n    return a + b\n")
    (project / "tests").mkdir()
    elsewhere.write_text("x = 1\n")
    (project / "tests" / "test_mod.py").symlink_to(elsewhere)
    with pytest.raises(BadFileError, match=r"links to .*elsewhere\.py, outside the project"):
        locate_test_file(project / "mod.py", project)
    with pytest.raises(BadFileError, match="outside the project"):
        locate_test_path(project / "mod.py", project)
    assert elsewhere.read_text() == "x = 1\n"
