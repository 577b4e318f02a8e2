"""The Neovim plugin (editors/neovim) end to end: real headless Neovim, the real server, a tiny model
trained to answer the example; the code action's command writes the test file through Neovim's own
`workspace/applyEdit`, Neovim saves it, and the test it wrote passes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES, PY_FOCAL

PLUGIN = Path(__file__).resolve().parents[1] / "editors" / "neovim"
NVIM = shutil.which("nvim")
TIMEOUT = 420  # seconds for the whole Neovim session (validate = "run": the tests are run, three times, with mutants)

# The Lua driver: runs after startup (VimEnter), logs every step to params.log, exits 0 when all passed.
DRIVER = r"""
local params = vim.fn.json_decode(table.concat(vim.fn.readfile(vim.env.UNITUNE_TEST_PARAMS), "\n"))
local lines = {}
local function log(message)
  for line in (tostring(message) .. "\n"):gmatch("(.-)\n") do
    table.insert(lines, line)
  end
  vim.fn.writefile(lines, params.log)
end

local notes = {}
local errors = 0 -- the server's error messages (window/showMessage type 1)
vim.notify = function(message, level)
  table.insert(notes, tostring(message))
  log("notify[" .. tostring(level) .. "] " .. tostring(message))
end
vim.lsp.handlers["window/showMessage"] = function(_, result)
  log("showMessage[" .. tostring(result.type) .. "] " .. tostring(result.message))
  if result.type == 1 then
    errors = errors + 1
  end
  table.insert(notes, tostring(result.message))
end

vim.opt.runtimepath:prepend(params.plugin)
vim.opt.swapfile = false
vim.lsp.set_log_level("warn")
local unitune = require("unitune")
unitune.setup({ cmd = params.cmd, settings = { model = params.model }, progress = "notify", open_test = "split" })

local function fail(message)
  log("FAIL: " .. message)
  vim.cmd("cquit 2")
end

local function wait(ms, what, condition)
  if not vim.wait(ms, condition, 20) then
    fail("timed out after " .. ms .. " ms waiting for " .. what)
    return false
  end
  return true
end

local function noted(fragment)
  for _, note in ipairs(notes) do
    if note:find(fragment, 1, true) then
      return note
    end
  end
end

local function main()
  log("nvim " .. tostring(vim.version().major) .. "." .. tostring(vim.version().minor) .. "." .. tostring(vim.version().patch))
  vim.cmd("edit " .. vim.fn.fnameescape(params.file))
  log("opened " .. params.file .. " filetype=" .. vim.bo.filetype)
  local client
  if not wait(20000, "the unitune client to attach", function()
    client = unitune.client(0)
    return client ~= nil and client.initialized
  end) then return end
  log("attached client " .. client.id .. " root " .. tostring(client.config.root_dir) .. " encoding " .. tostring(client.offset_encoding))

  -- the code action at the cursor in Account.deposit
  vim.api.nvim_win_set_cursor(0, { params.line, 8 })
  local at = vim.lsp.util.make_position_params(0, client.offset_encoding)
  local responses = vim.lsp.buf_request_sync(0, "textDocument/codeAction", {
    textDocument = at.textDocument,
    range = { start = at.position, ["end"] = at.position },
    context = { diagnostics = {} },
  }, 10000)
  local response = responses and responses[client.id]
  if not response or response.err or not response.result or not response.result[1] then
    return fail("no code action: " .. vim.inspect(responses))
  end
  local action = response.result[1]
  log("code action: " .. action.title)
  if action.title ~= "Generate unit tests for `Account.deposit`" then
    return fail("unexpected title " .. action.title)
  end
  if type(action.command) ~= "table" or action.command.command ~= "unitune.generateTests" then
    return fail("unexpected command " .. vim.inspect(action.command))
  end

  -- run it as a user does: vim.lsp.buf.code_action(), the unitune action picked in vim.ui.select; the
  -- client sends its command and the plugin's handler gets the result (a message, the test file shown)
  local picked
  vim.ui.select = function(items, opts, on_choice)
    for index, item in ipairs(items) do
      local title = opts.format_item and opts.format_item(item) or vim.inspect(item)
      if title:find("Generate unit tests for `Account.deposit`", 1, true) then
        picked = title
        return on_choice(item, index)
      end
    end
    on_choice(nil, nil)
  end
  vim.lsp.buf.code_action()
  if not wait(180000, "unitune.generateTests from vim.lsp.buf.code_action()", function()
    return noted("test(s) for Account.deposit added to") or errors > 0
  end) then return end
  log("picked: " .. tostring(picked))
  local added = noted("test(s) for Account.deposit added to")
  if not added then
    return fail("generation failed")
  end
  local test_buf = vim.fn.bufnr(params.test_file)
  if test_buf == -1 then
    return fail("no buffer for " .. params.test_file)
  end
  if vim.fn.bufwinid(test_buf) == -1 then
    return fail("the test file is not shown in a window")
  end
  local text = table.concat(vim.api.nvim_buf_get_lines(test_buf, 0, -1, false), "\n")
  log("test buffer:\n" .. text)
  if not text:find("def test_deposit", 1, true) then
    return fail("the edit was not applied to the test buffer")
  end
  if not noted("unitune: tests for Account.deposit") then
    return fail("no progress was shown")
  end
  vim.cmd("wincmd p")

  -- :UnituneStatus
  vim.cmd("UnituneStatus")
  if not wait(5000, ":UnituneStatus", function() return noted("model runtime:") end) then return end
  if not noted("generations: 1") then
    return fail(":UnituneStatus did not count the generation")
  end

  -- :UnituneGenerate sends (uri, position): at the module docstring, the server answers "no function"
  vim.api.nvim_win_set_cursor(0, { 1, 0 })
  vim.cmd("UnituneGenerate")
  if not wait(5000, ":UnituneGenerate", function() return noted("no function or method at line 1") end) then return end

  -- :UnituneAdapter with no name lists the adapters (none here) and picks with vim.ui.select
  local offered
  vim.ui.select = function(items, opts, on_choice)
    offered = {}
    for _, item in ipairs(items) do table.insert(offered, opts.format_item(item)) end
    on_choice(items[#items], #items)
  end
  vim.cmd("UnituneAdapter")
  if not wait(5000, ":UnituneAdapter", function() return noted("using the bare model") end) then return end
  log("adapters offered: " .. vim.inspect(offered))

  -- :UnituneGenerate at Account.deposit again: a second test, next to the first (unsaved) one
  vim.api.nvim_win_set_cursor(0, { params.line, 8 })
  local before, errors_before = #notes, errors
  local function deposit_tests(buffer_text) return select(2, buffer_text:gsub("\ndef test_deposit", "")) end
  local tests_before = deposit_tests(text)
  vim.cmd("UnituneGenerate")
  if not wait(180000, ":UnituneGenerate", function()
    return (#notes > before and notes[#notes]:find("added to", 1, true) ~= nil) or errors > errors_before
  end) then return end
  text = table.concat(vim.api.nvim_buf_get_lines(test_buf, 0, -1, false), "\n")
  log("test buffer:\n" .. text)
  if deposit_tests(text) <= tests_before then
    return fail(":UnituneGenerate did not add a test after the unsaved first ones")
  end

  vim.cmd("silent wall")
  log("saved; done")
  vim.cmd("qall!")
end

vim.api.nvim_create_autocmd("VimEnter", {
  once = true,
  callback = function()
    vim.schedule(function()
      local ok, err = xpcall(main, debug.traceback)
      if not ok then
        fail("error: " .. tostring(err))
      end
    end)
  end,
})
"""


@pytest.mark.slow
@pytest.mark.skipif(NVIM is None, reason="Neovim (nvim) is not installed; .ci/run installs it with apt-get")
def test_code_action_writes_a_passing_test_through_neovim(tmp_path, trained_base):
    project = tmp_path / "examples"
    shutil.copytree(EXAMPLES / "python", project / "python", ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    source = project / PY_FOCAL[0]  # python/bank/account.py
    log = tmp_path / "nvim-test.log"
    params = {
        "plugin": str(PLUGIN), "cmd": [sys.executable, "-m", "unitune.server"], "model": str(trained_base),
        "file": str(source), "line": PY_FOCAL[1], "log": str(log),
        "test_file": str(project / "python" / "tests" / "test_account.py"),
    }
    (tmp_path / "params.json").write_text(json.dumps(params))
    init = tmp_path / "init.lua"
    init.write_text(DRIVER)
    xdg = {f"XDG_{kind}_HOME": str(tmp_path / "xdg" / kind.lower()) for kind in ("CONFIG", "DATA", "CACHE", "STATE")}
    env = {**os.environ, **xdg, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
           "UNITUNE_HOME": str(tmp_path / "home"), "UNITUNE_CONFIG": str(tmp_path / "config.toml"),
           "UNITUNE_TEST_PARAMS": str(tmp_path / "params.json")}

    def report(what: str, stdout: str = "", stderr: str = "") -> str:
        parts = [what, "--- driver log ---", log.read_text() if log.exists() else "(none)"]
        lsp_logs = list((tmp_path / "xdg").rglob("lsp.log"))
        if lsp_logs:
            parts += ["--- lsp.log (tail) ---", lsp_logs[0].read_text()[-6000:]]
        return "\n".join(parts + ["--- nvim stdout ---", stdout[-4000:], "--- nvim stderr ---", stderr[-4000:]])

    try:
        run = subprocess.run([NVIM, "--headless", "--clean", "-u", str(init)], cwd=project / "python", env=env,
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as error:
        out = error.stdout.decode(errors="replace") if isinstance(error.stdout, bytes) else (error.stdout or "")
        err = error.stderr.decode(errors="replace") if isinstance(error.stderr, bytes) else (error.stderr or "")
        pytest.fail(report(f"nvim did not finish within {TIMEOUT} s", out, err))
    assert run.returncode == 0, report(f"nvim exited with {run.returncode}", run.stdout, run.stderr)

    test_file = project / "python" / "tests" / "test_account.py"
    assert test_file.exists(), report("Neovim did not save tests/test_account.py", run.stdout, run.stderr)
    text = test_file.read_text()
    assert "def test_deposit():" in text and "assert account.deposit(5) == 5" in text, text
    assert text.count("\ndef test_deposit") >= 2 and text.count("import pytest") <= 1, text
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
                           cwd=project / "python", capture_output=True, text=True, timeout=120)
    assert tests.returncode == 0, tests.stdout + tests.stderr
