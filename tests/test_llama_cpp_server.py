"""The remote backend end to end against a real llama.cpp server (`tests/llama_server.py` builds it from
the package index once) running the default model's own GGUF, with LoRA adapters trained by `unitune
train` on that model and converted by `unitune adapters publish`: each project's adapter chosen per
request on one server, the same adapter writing the same test in this process, a cancelled request, and
a server that is down. Marked `slow`: two short trainings and a few generations on two CPU cores."""

from __future__ import annotations

import json
import shlex
import threading
import time

import llama_server
import pytest
from conftest import PY_FOCAL, example_prompt

from unitune.cli import main
from unitune.settings import DEFAULT_MODEL

pytestmark = pytest.mark.slow

# What each project's adapter is trained to write for `Account.deposit`: tests no bare model writes.
TEAMS = {
    "team-a": '    account = Account("team-a", 10)\n    assert account.deposit(5) == 15\n',
    "team-b": '    account = Account("team-b", 20)\n    assert account.deposit(30) == 50\n',
}


@pytest.fixture(scope="module")
def environment(real_model_home, tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("UNITUNE_HOME", str(real_model_home))
    patch.setenv("UNITUNE_CONFIG", str(tmp_path_factory.mktemp("config") / "none.toml"))
    yield real_model_home
    patch.undo()


#: How to get the server these tests drive: a step of its own, named by the README (CI runs it first).
BUILD_STEP = ("llama.cpp's server is not built for these tests: `python tests/llama_server.py` builds it once "
              "(4 to 8 minutes on two cores, 15 MB in ~/.cache/unitune-tests; it needs cmake and g++), then run "
              "them again")


@pytest.fixture(scope="module")
def binary():
    """The tests' llama-server, when it is built: compiling it here would spend most of the test run on it
    (a newcomer's run once spent 55 minutes in this module), so an absent server skips these tests."""
    found = llama_server.find()
    if found is None:
        pytest.skip(BUILD_STEP)
    return found


@pytest.fixture(scope="module")
def project(environment, tmp_path_factory):
    """A copy of the example project with both teams' LoRA adapters in its store, trained by `unitune
    train` on the default model until each writes its own test."""
    import shutil

    from conftest import EXAMPLES

    root = tmp_path_factory.mktemp("examples")
    shutil.copytree(EXAMPLES, root, dirs_exist_ok=True)
    prompt = example_prompt(*PY_FOCAL).text
    for name, completion in TEAMS.items():
        pairs = root / f"{name}.jsonl"
        rows = [{"language": "python", "test_file": "tests/test_account.py", "test_name": "test_deposit",
                 "focal_file": "bank/account.py", "focal_name": "deposit", "focal_qualified_name": "Account.deposit",
                 "test_code": "", "focal_code": "", "prompt": prompt, "completion": completion,
                 "split": "train" if i else "valid"} for i in range(3)]
        pairs.write_text("".join(json.dumps(row) + "\n" for row in rows))
        code = main(["train", str(pairs), "--method", "lora", "--name", name, "--max-steps", "12", "--batch-size", "1",
                     "--grad-accum", "1", "--lr", "3e-3", "--warmup", "0", "--store", "project", "--progress", "none",
                     "--project", str(root / "python")])
        assert code == 0, name
    return root


@pytest.fixture(scope="module")
def server(binary, project, tmp_path_factory):
    """llama.cpp's server on the default model's GGUF, restarted with both adapters the way `unitune adapters
    publish` says to."""
    logs = tmp_path_factory.mktemp("llama-logs")
    gguf_dir = tmp_path_factory.mktemp("gguf")
    # the bare model first, as `unitune adapters llama-server` prints it
    command = shlex.split(run_main("adapters", "llama-server", "--port", "0", "--project", project / "python"))
    command[0] = str(binary)
    for name in TEAMS:  # publish each adapter, restarting the server as the command says
        with llama_server.LlamaServer(command, logs / f"before-{name}.log") as running:
            out = run_main("adapters", "publish", name, "--server", running.url, "--project", project / "python",
                           "--gguf-dir", gguf_dir)
        command = shlex.split(out.split("\n  ", 1)[1].split("\n", 1)[0])
        command[0] = str(binary)
    assert command.count("--lora") == 2  # the second restart kept the first adapter
    with llama_server.LlamaServer(command, logs / "with-adapters.log") as running:
        for name in TEAMS:  # both are there now
            assert "is on the llama.cpp server" in run_main("adapters", "publish", name, "--server", running.url,
                                                  "--project", project / "python", "--gguf-dir", gguf_dir)
        yield running


def run_main(*argv) -> str:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(arg) for arg in argv])
    assert code == 0, err.getvalue()
    return out.getvalue()


def generate(project, *extra) -> dict:
    relative, line = PY_FOCAL
    return json.loads(run_main("generate", project / relative, "--line", line, "--validate", "syntax",
                               "--max-new-tokens", "48", "--json", *extra))


def first_test(result: dict) -> str:
    return result["tests"][0]["source"] if result.get("tests") else ""


def test_each_projects_adapter_is_chosen_per_request_on_one_server(server, project):
    written = {name: first_test(generate(project, "--server-url", server.url, "--adapter", name)) for name in TEAMS}
    bare = first_test(generate(project, "--server-url", server.url, "--adapter", "none"))
    assert 'Account("team-a", 10)' in written["team-a"] and "deposit(5) == 15" in written["team-a"]
    assert 'Account("team-b", 20)' in written["team-b"] and "deposit(30) == 50" in written["team-b"]
    assert "team-" not in bare and "deposit(" in bare  # the bare model's own test of the function
    # one server, its base read once: the adapters were switched per request, not by restarting
    log = server.log_path.read_text()
    assert log.count("loading model tensors") <= 1


def test_the_converted_adapter_writes_what_it_writes_in_this_process(server, project):
    remote = first_test(generate(project, "--server-url", server.url, "--adapter", "team-b"))
    local = first_test(generate(project, "--adapter", "team-b"))
    assert 'Account("team-b", 20)' in local and 'Account("team-b", 20)' in remote


def test_a_cancelled_request_ends_at_once_and_the_server_goes_on(server, project):
    from unitune.runtime.generation import SamplingOptions
    from unitune.runtime.loading import ModelSpec
    from unitune.runtime.remote import RemoteRuntime
    from unitune.errors import GenerationCancelled
    from unitune.settings import Settings

    runtime = RemoteRuntime(ModelSpec.from_settings(Settings(server_url=server.url)))
    prompt = example_prompt(*PY_FOCAL)
    # Lines the server has not seen (its prompt cache cannot skip them) before the prompt, cut to the 2,096
    # tokens the request keeps: their prefill alone outlasts the wait below, however short the test.
    unseen = "".join(f"# {time.time_ns()} note {i}: every deposit is added to the running balance\n" for i in range(90))
    cancel = threading.Event()
    outcome: dict = {}

    def ask():
        started = time.monotonic()
        try:
            runtime.complete(unseen + prompt.text, SamplingOptions(max_new_tokens=2000), prompt.stop_scanner,
                             context_length=4096, cancel=cancel)
            outcome["result"] = "finished"
        except GenerationCancelled:
            outcome["result"] = "cancelled"
        outcome["seconds"] = time.monotonic() - started

    worker = threading.Thread(target=ask)
    worker.start()
    time.sleep(1)
    cancelled_at = time.monotonic()
    cancel.set()
    worker.join(timeout=30)
    assert outcome["result"] == "cancelled"
    assert time.monotonic() - cancelled_at < 5
    # the server dropped the abandoned request and answers the next one
    assert "deposit(" in first_test(generate(project, "--server-url", server.url, "--adapter", "none"))


def test_a_server_that_is_down_gets_a_clear_message(project, binary, tmp_path, capsys):
    from unitune.runtime.llama_cpp import base_gguf, server_command

    with llama_server.LlamaServer(server_command(str(binary), base_gguf(DEFAULT_MODEL), [], 0), tmp_path / "l.log") as gone:
        url = gone.url
    relative, line = PY_FOCAL
    code = main(["generate", str(project / relative), "--line", str(line), "--server-url", url, "--adapter", "none"])
    err = capsys.readouterr().err
    assert code != 0 and url in err and "Traceback" not in err


# -- engine = llama.cpp: unitune's own server ----------------------------------------------------

@pytest.fixture
def llama_engine(binary, monkeypatch):
    """llama.cpp's server found where `unitune engine install` would have put it (here: the tests' build)."""
    monkeypatch.setenv("UNITUNE_LLAMA_SERVER", str(binary))


def test_the_llama_cpp_engine_runs_each_projects_adapter_with_no_server_of_the_users(llama_engine, project,
                                                                                   environment):
    results = {name: generate(project, "--adapter", name) for name in TEAMS}
    assert all(result["engine"] == "llama.cpp" for result in results.values()), results
    assert 'Account("team-a", 10)' in first_test(results["team-a"])
    assert 'Account("team-b", 20)' in first_test(results["team-b"])
    # each adapter converted once, under its weights' hash, and found there the next time
    converted = {path.name: path for path in (environment / "gguf").rglob("team-*.gguf")}
    assert sorted(converted) == ["team-a.gguf", "team-b.gguf"]
    written = {name: path.stat().st_mtime_ns for name, path in converted.items()}
    again = generate(project, "--adapter", "team-a")
    assert 'Account("team-a", 10)' in first_test(again)
    assert {name: path.stat().st_mtime_ns for name, path in converted.items()} == written
    bare = generate(project, "--adapter", "none")
    assert bare["engine"] == "llama.cpp" and "team-" not in first_test(bare) and "deposit(" in first_test(bare)


def test_llama_cpp_and_torch_write_the_same_test_up_to_rounding(llama_engine, project):
    """Greedy output of both engines on one prompt. llama.cpp multiplies the 4-bit weights as they are
    (activations rounded to 8 bits); torch multiplies the same weights dequantized to floats. The tests
    start alike and may part where two next tokens are nearly as likely: measured, not hidden."""
    from unitune.runtime.llama_cpp import base_gguf, gguf_tokenizer

    torch_test = first_test(generate(project, "--adapter", "none", "--engine", "torch"))
    llama_test = first_test(generate(project, "--adapter", "none", "--engine", "llama.cpp"))
    tokenizer = gguf_tokenizer(DEFAULT_MODEL, base_gguf(DEFAULT_MODEL))
    ours, theirs = (tokenizer(text, add_special_tokens=False)["input_ids"] for text in (llama_test, torch_test))
    same = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    print(f"llama.cpp and torch: the first {same} of {len(theirs)} tokens are the same")
    # Measured: the same 64 of 64 tokens on the 622-token prompt of `bench/engines.py`, the first 5 of 51
    # on this one (docs/engines.md). What must hold is that each engine writes a test of the function.
    assert "def test_" in llama_test and "deposit(" in llama_test and "deposit(" in torch_test
    assert same >= 1, (llama_test, torch_test)  # the same opening: both continue the prompt's own test
