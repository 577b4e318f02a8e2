"""Shared fixtures: tiny local models and adapters built in-process (no network)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `engine = "auto"` would build llama.cpp's server in the background the first time a test uses the
# default model without it: minutes of compiling beside the suite. Tests that want llama.cpp name it.
os.environ["UNITUNE_ENGINE_BUILD"] = "never"


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """A tiny random Llama-style model and tokenizer saved to a local folder."""
    import tinymodels

    return tinymodels.save_model(tmp_path_factory.mktemp("models") / "tiny-base", seed=0)


#: A ChatML template, as the default model's tokenizer has: a tiny model with it takes prompts as chats.
CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="session")
def chat_base(tiny_base, tmp_path_factory) -> Path:
    """`tiny_base` with a chat template: its prompts go through the template, as the default model's
    do, and a contract server can stand in for it."""
    import shutil

    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("models") / "chat-coder"
    shutil.copytree(tiny_base, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh `UNITUNE_HOME` and settings file, run from `tmp_path`."""
    monkeypatch.setenv("UNITUNE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("UNITUNE_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


@pytest.fixture(scope="session")
def endless_base(tmp_path_factory) -> Path:
    """A tiny model whose generation never ends on its own (it writes spaces forever)."""
    import tinymodels

    return tinymodels.save_endless_model(tmp_path_factory.mktemp("models") / "endless-base")


@pytest.fixture(scope="session")
def other_base(tmp_path_factory) -> Path:
    """Another tiny model of the same shape but different weights (for wrong-base checks)."""
    import tinymodels

    return tinymodels.save_model(tmp_path_factory.mktemp("models") / "other-base", seed=7)


@pytest.fixture(scope="session")
def peft_adapters(tiny_base, tmp_path_factory) -> dict[str, Path]:
    """One adapter of each PEFT type for `tiny_base`, saved by plain PEFT (two LoRA adapters)."""
    import tinymodels

    root = tmp_path_factory.mktemp("peft")
    return {
        "lora": tinymodels.save_peft_adapter(tiny_base, root / "lora-a", "lora", seed=1),
        "lora2": tinymodels.save_peft_adapter(tiny_base, root / "lora-b", "lora", seed=2),
        "ia3": tinymodels.save_peft_adapter(tiny_base, root / "ia3-a", "ia3", seed=3),
        "prompt-tuning": tinymodels.save_peft_adapter(tiny_base, root / "pt-a", "prompt-tuning", seed=4),
    }


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PY_FOCAL = ("python/bank/account.py", 17)  # Account.deposit
JAVA_FOCAL = ("java/src/main/java/com/example/bank/Account.java", 13)  # Account.deposit
# The body of the example prompts' closed `def test_deposit():` line, then the start of another test.
PY_COMPLETION = '    account = Account("ada")\n    assert account.deposit(5) == 5\n\n\ndef test_other():\n'
JAVA_COMPLETION = (
    '        Account account = new Account("ada", 0);\n        assertEquals(5, account.deposit(5));\n    }\n\n'
    "    @Test\n"
)


EXISTING_PY_TESTS = (
    "# hand-written tests: keep me\n"
    "from bank.account import Account, add\n\n\n"
    "def test_add():\n    assert add(2, 2) == 4\n\n\n"
    "def test_deposit():\n    assert Account('x').deposit(1) == 1  # same name as the new one\n"
)
# The same after unitune added tests to it: a raises test's import goes after the file's imports.
EXISTING_PY_TESTS_WITH_PYTEST = EXISTING_PY_TESTS.replace("import Account, add\n", "import Account, add\nimport pytest\n")
# The test file a first generation for Account.deposit writes: the model's test and the one another
# argument gives (the editors' tests generate a second time with it open).
FIRST_GENERATED_PY_TESTS = (
    "import pytest\n\nfrom bank.account import Account\n\n\n"
    'def test_deposit():\n    account = Account("ada")\n    assert account.deposit(5) == 5\n\n\n'
    'def test_deposit_raises_value_error():\n    account = Account("ada")\n'
    "    # raised when the code was run (regression oracle)\n"
    "    with pytest.raises(ValueError):\n        account.deposit(0)\n"
)


def example_prompt(relative: str, line: int, root: Path | None = None, existing: str | None = None,
                   failure: str | None = None):
    """The prompt unitune builds for the example focal method at `relative:line` (under `root`), as a
    request builds it (the project block included; `failure` makes it a retry prompt)."""
    from unitune.focal import require_focal_at
    from unitune.placement import locate_test_file
    from unitune.project_context import gather_project_context
    from unitune.project_layout import find_project_root
    from unitune.prompt import build_prompt
    from unitune.source import SourceFile, cli_offset

    path = (root or EXAMPLES) / relative
    file = SourceFile.from_path(path)
    function = require_focal_at(file, cli_offset(file, line, None))
    location = locate_test_file(path)
    if existing is None and location.exists:
        existing = location.path.read_text()
    project = gather_project_context(file, function, find_project_root(path), location=location,
                                     location_text=existing)
    return build_prompt(file, function, framework=location.framework, module_import=location.module_import,
                        existing_test_source=existing, project=project, failure=failure)


def trained_model(folder: Path) -> Path:
    """Save to `folder` a tiny model trained until it answers the examples' prompts with a known,
    valid test (cached on disk, see `tinymodels.overfit_model`). Outside pytest too:
    `python -c 'import sys; sys.path.insert(0, "tests"); import conftest; conftest.trained_model(...)'`."""
    import tinymodels

    pairs = [
        (example_prompt(*PY_FOCAL).text, PY_COMPLETION),
        (example_prompt(*JAVA_FOCAL).text, JAVA_COMPLETION),
        (example_prompt(*PY_FOCAL, existing=EXISTING_PY_TESTS).text, PY_COMPLETION),
        (example_prompt(*PY_FOCAL, existing=FIRST_GENERATED_PY_TESTS).text, PY_COMPLETION),
    ]
    return tinymodels.overfit_model(folder, pairs, steps=500)


@pytest.fixture(scope="session")
def trained_base(tmp_path_factory) -> Path:
    """A tiny model trained until it answers the examples' prompts with a known, valid test: a real
    model whose output we know, for end-to-end tests of generation, stopping and writing."""
    return trained_model(tmp_path_factory.mktemp("models") / "trained-base")


@pytest.fixture
def example_project(tmp_path) -> Path:
    """A fresh copy of the examples folder (Python project under python/, Maven layout under java/)."""
    import shutil

    target = tmp_path / "examples"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return target


@pytest.fixture(scope="session")
def real_model_home(tmp_path_factory) -> Path:
    """A `UNITUNE_HOME` holding the default model (Qwen2.5-Coder-0.5B-Instruct), converted once per
    test session from the packages unitune installs, as a user's first run converts it. Set
    `UNITUNE_TEST_HOME` to an existing home to reuse its converted copy between sessions."""
    from unitune.runtime.builtin_models import BUILTIN_MODELS, resolve_builtin
    from unitune.settings import DEFAULT_MODEL

    home = Path(os.environ.get("UNITUNE_TEST_HOME") or tmp_path_factory.mktemp("real-home"))
    previous = os.environ.get("UNITUNE_HOME")
    os.environ["UNITUNE_HOME"] = str(home)
    try:
        resolve_builtin(BUILTIN_MODELS[DEFAULT_MODEL])
    finally:
        if previous is None:
            os.environ.pop("UNITUNE_HOME", None)
        else:
            os.environ["UNITUNE_HOME"] = previous
    return home
