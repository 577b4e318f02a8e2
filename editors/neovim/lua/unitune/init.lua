-- unitune for Neovim: starts the unitune language server for Python and Java buffers and adds
-- :UnituneGenerate, :UnituneAdapter, :UnituneStatus and :UnituneCancel.
--
-- Works on Neovim 0.7 (vim.lsp.start_client + vim.lsp.buf_attach_client) and later (vim.lsp.start).

local M = {}

local NAME = "unitune"
local GENERATE = "unitune.generateTests"
local LIST = "unitune.listAdapters"
local SELECT = "unitune.selectAdapter"
local STATUS = "unitune.status"

local defaults = {
  cmd = nil, -- default: { python, "-m", "unitune.server" }
  python = "python3",
  cmd_env = nil,
  settings = {},
  filetypes = { "python", "java" },
  root_markers = {
    "pyproject.toml", "setup.py", "setup.cfg", "unitune.toml",
    "pom.xml", "build.gradle", "build.gradle.kts", ".git",
  },
  progress = "echo", -- "echo", "notify" or false
  open_test = "split", -- after generating from a code action or :UnituneGenerate: "split", "vsplit", "edit", "tab" or false
  on_attach = nil,
  capabilities = nil,
  -- Milliseconds Neovim waits before sending a buffer's changes. 0 (default): at once, so a generation
  -- always sees the current text of every open file, including a test file it has just edited.
  debounce_text_changes = 0,
}

M.config = vim.deepcopy(defaults)
local clients_by_root = {} -- Neovim 0.7: root_dir -> client id
local progress_titles = {} -- progress token -> title (tokens of running work, for :UnituneCancel too)
local augroup = nil

-- -- small compatibility helpers -----------------------------------------------------------------

local has_011 = vim.fn.has("nvim-0.11") == 1

local function notify(message, level)
  vim.notify(message, level or vim.log.levels.INFO, { title = NAME })
end

local function request(client, method, params, handler, bufnr)
  if has_011 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

local function request_sync(client, method, params, timeout, bufnr)
  if has_011 then
    return client:request_sync(method, params, timeout, bufnr)
  end
  return client.request_sync(method, params, timeout, bufnr)
end

local function client_notify(client, method, params)
  if has_011 then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

local function buf_clients(bufnr)
  if vim.lsp.get_clients then
    return vim.lsp.get_clients({ bufnr = bufnr })
  end
  return vim.tbl_values(vim.lsp.buf_get_clients(bufnr))
end

local function all_clients()
  if vim.lsp.get_clients then
    return vim.lsp.get_clients()
  end
  return vim.lsp.get_active_clients()
end

--- The unitune client attached to `bufnr` (default: the current buffer), or nil.
function M.client(bufnr)
  if bufnr == nil or bufnr == 0 then
    bufnr = vim.api.nvim_get_current_buf()
  end
  for _, client in ipairs(buf_clients(bufnr)) do
    if client.name == NAME then
      return client
    end
  end
  return nil
end

local function any_client()
  local client = M.client(0)
  if client then
    return client
  end
  for _, other in ipairs(all_clients()) do
    if other.name == NAME then
      return other
    end
  end
  return nil
end

local function stat(path)
  return vim.loop.fs_stat(path)
end

--- The nearest folder at or above `path` holding one of the root markers (else the file's folder).
function M.root_dir(path)
  local dir = vim.fn.fnamemodify(path, ":p:h")
  local start = dir
  while true do
    for _, marker in ipairs(M.config.root_markers) do
      if stat(dir .. "/" .. marker) then
        return dir
      end
    end
    local parent = vim.fn.fnamemodify(dir, ":h")
    if parent == dir then
      return start
    end
    dir = parent
  end
end

-- -- handlers ------------------------------------------------------------------------------------

local function show_progress(text)
  if M.config.progress == "notify" then
    notify(text)
  elseif M.config.progress then
    vim.api.nvim_echo({ { text, "Comment" } }, false, {})
  end
end

-- `$/progress`: the default handler first (statuslines, fidget etc. keep working), then a short line.
local function progress_handler(err, result, ctx, config)
  local default = vim.lsp.handlers["$/progress"]
  if default then
    default(err, result, ctx, config)
  end
  if err or type(result) ~= "table" or type(result.value) ~= "table" then
    return
  end
  local token, value = result.token, result.value
  if value.kind == "begin" then
    progress_titles[token] = value.title or NAME
  end
  local title = progress_titles[token] or NAME
  local text = title
  if value.message and value.message ~= "" then
    text = text .. ": " .. value.message
  end
  if value.percentage then
    text = text .. string.format(" (%d%%)", value.percentage)
  end
  if value.kind == "end" then
    progress_titles[token] = nil
  end
  show_progress(text)
end

local function open_test(result)
  local how = M.config.open_test
  if not how or type(result.test_file) ~= "string" then
    return
  end
  local path = vim.uri_to_fname(result.test_file)
  local bufnr = vim.fn.bufnr(path)
  if bufnr ~= -1 and vim.fn.bufwinid(bufnr) ~= -1 then
    return -- already shown (Neovim 0.10+ shows it on the server's window/showDocument)
  end
  local commands = { split = "split", vsplit = "vsplit", edit = "edit", tab = "tabedit" }
  vim.cmd((commands[how] or "split") .. " " .. vim.fn.fnameescape(path))
  local first = type(result.tests) == "table" and result.tests[1]
  if first then
    vim.fn.search("\\<" .. first .. "\\>", "cw")
  end
end

local function generated(err, result)
  if err then
    notify("unitune: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
    return
  end
  if type(result) ~= "table" or not result.ok then
    return -- the server already said why (window/showMessage); a cancel needs no message
  end
  local path = vim.fn.fnamemodify(vim.uri_to_fname(result.test_file), ":~:.")
  notify(string.format("unitune: %d test(s) for %s added to %s (unsaved: :w to keep them)",
    #(result.tests or {}), result["function"] or "the function", path))
  open_test(result)
end

-- `workspace/executeCommand` responses that had no handler of their own (a code action's command).
local function execute_command_handler(err, result, ctx, config)
  local params = ctx and ctx.params
  if params and params.command == GENERATE then
    return generated(err, result)
  end
  local default = vim.lsp.handlers["workspace/executeCommand"]
  if err then
    notify("unitune: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
  elseif default then
    return default(err, result, ctx, config)
  end
end

-- -- starting the server -------------------------------------------------------------------------

local function server_cmd()
  if M.config.cmd then
    return M.config.cmd
  end
  return { M.config.python, "-m", "unitune.server" }
end

local function client_config(root)
  local settings = M.config.settings or {}
  if vim.tbl_isempty(settings) then
    settings = vim.empty_dict() -- sent as {} (an empty Lua table would be [])
  end
  local cmd = server_cmd()
  return {
    name = NAME,
    cmd = cmd,
    cmd_env = M.config.cmd_env,
    root_dir = root,
    init_options = settings,
    settings = { unitune = settings },
    capabilities = M.config.capabilities,
    flags = { debounce_text_changes = M.config.debounce_text_changes },
    handlers = {
      ["$/progress"] = progress_handler,
      ["workspace/executeCommand"] = execute_command_handler,
    },
    on_attach = M.config.on_attach,
    on_exit = function(code, signal)
      if code ~= 0 and signal == 0 then
        vim.schedule(function()
          notify(string.format(
            "unitune: the server (%s) exited with code %d. Is unitune installed for that Python? "
              .. "Run `%s -m pip install unitune`, or set `cmd`/`python` in require('unitune').setup().",
            table.concat(cmd, " "), code, cmd[1]), vim.log.levels.ERROR)
        end)
      end
    end,
  }
end

local function attach(bufnr)
  if not vim.api.nvim_buf_is_valid(bufnr) or vim.bo[bufnr].buftype ~= "" then
    return
  end
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == "" or name:match("^%a[%w+.-]*://") then
    return -- unnamed buffers and non-file URIs (fugitive://, ...)
  end
  local cmd = server_cmd()
  if vim.fn.executable(cmd[1]) == 0 then
    vim.notify_once("unitune: cannot run " .. cmd[1] .. "; set `python` or `cmd` in require('unitune').setup()",
      vim.log.levels.ERROR)
    return
  end
  local root = M.root_dir(name)
  if vim.lsp.start then -- 0.8+: reuses the client with the same name and root_dir
    vim.lsp.start(client_config(root), { bufnr = bufnr })
    return
  end
  local id = clients_by_root[root]
  local client = id and vim.lsp.get_client_by_id(id)
  if not client or client.is_stopped() then
    id = vim.lsp.start_client(client_config(root))
    if not id then
      return
    end
    clients_by_root[root] = id
  end
  vim.lsp.buf_attach_client(bufnr, id)
end

-- -- commands --------------------------------------------------------------------------------------

local function require_client()
  local client = M.client(0)
  if not client then
    notify("unitune: no unitune server is attached to this buffer (filetypes: "
      .. table.concat(M.config.filetypes, ", ") .. ")", vim.log.levels.WARN)
  end
  return client
end

local function folder_uri(client)
  local root = client.config and client.config.root_dir
  return root and vim.uri_from_fname(root) or vim.NIL
end

--- Run a unitune command on the current buffer's server; `handler(err, result)`.
function M.execute(command, arguments, handler, client)
  client = client or require_client()
  if not client then
    return false
  end
  local bufnr = vim.api.nvim_get_current_buf()
  return request(client, "workspace/executeCommand", { command = command, arguments = arguments or {} },
    function(err, result, ctx, config)
      if handler then
        handler(err, result, ctx, config)
      elseif err then
        notify("unitune: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      end
    end, bufnr)
end

--- :UnituneGenerate: tests for the function under the cursor.
function M.generate()
  local client = require_client()
  if not client then
    return
  end
  -- the position in the client's offset encoding (UTF-16 unless the server chose another)
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding or "utf-16")
  M.execute(GENERATE, { params.textDocument.uri, params.position }, generated, client)
end

local function select_adapter(client, name)
  M.execute(SELECT, { name or vim.NIL, folder_uri(client) }, function(err, result)
    if err then
      notify("unitune: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
    elseif type(result) == "table" and result.ok then
      notify(result.adapter and ("unitune: using adapter " .. result.adapter)
        or "unitune: using the bare model")
    end -- a failure is reported by the server itself
  end, client)
end

--- :UnituneAdapter [name]: select an adapter ("none": the bare model); no name: pick from a list.
function M.adapter(name)
  local client = require_client()
  if not client then
    return
  end
  if name and name ~= "" then
    select_adapter(client, name ~= "none" and name or nil)
    return
  end
  M.execute(LIST, { folder_uri(client) }, function(err, adapters)
    if err then
      notify("unitune: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      return
    end
    local choices = {}
    for _, entry in ipairs(adapters or {}) do
      table.insert(choices, entry)
    end
    table.insert(choices, { name = nil, none = true })
    vim.ui.select(choices, {
      prompt = "unitune adapter",
      format_item = function(entry)
        if entry.none then
          return "none (the bare model)"
        end
        local text = string.format("%s  %s  [%s]", entry.name, entry.method or "?", entry.store or "?")
        if entry.ok == false then
          text = text .. "  (unusable: " .. table.concat(entry.problems or {}, "; ") .. ")"
        end
        return text
      end,
    }, function(choice)
      if choice then
        select_adapter(client, choice.name)
      end
    end)
  end, client)
end

local function complete_adapters(arg_lead)
  local client = M.client(0)
  local names = { "none" }
  if client then
    local response = request_sync(client, "workspace/executeCommand",
      { command = LIST, arguments = { folder_uri(client) } }, 1500, 0)
    for _, entry in ipairs(response and response.result or {}) do
      table.insert(names, entry.name)
    end
  end
  return vim.tbl_filter(function(name)
    return vim.startswith(name, arg_lead)
  end, names)
end

local function status_lines(status)
  local runtime = status.runtime or {}
  local lines = {
    string.format("unitune %s (positions: %s)", tostring(status.version), tostring(status.position_encoding)),
    string.format("model runtime: %s%s%s", tostring(runtime.state),
      runtime.model ~= nil and runtime.model ~= vim.NIL and (" (" .. tostring(runtime.model) .. ")") or "",
      runtime.engine ~= nil and runtime.engine ~= vim.NIL and (" on " .. tostring(runtime.engine) .. ": "
        .. tostring(runtime.engine_reason)) or ""),
    string.format("generations: %s, open documents: %s", tostring(status.generations), tostring(status.open_documents)),
  }
  for _, folder in ipairs(status.folders or {}) do
    local adapter = folder.adapter
    if adapter == nil or adapter == vim.NIL then
      adapter = "none"
    end
    table.insert(lines, string.format("%s: model %s, adapter %s, %s on %s, context %s, candidates %s, validate %s",
      vim.uri_to_fname(folder.uri), tostring(folder.model), tostring(adapter), tostring(folder.quantization),
      tostring(folder.device), tostring(folder.context), tostring(folder.candidates), tostring(folder.validate)))
  end
  for _, job in ipairs(status.jobs or {}) do
    table.insert(lines, string.format("running: %s %s (%s)", job.kind, job.title, job.stage))
  end
  return lines
end

--- :UnituneStatus: the server's version, runtime and per-folder settings.
function M.status()
  local client = any_client()
  if not client then
    notify("unitune: no unitune server is running (it starts with the first "
      .. table.concat(M.config.filetypes, " or ") .. " buffer)", vim.log.levels.WARN)
    return
  end
  M.execute(STATUS, {}, function(err, status)
    if err then
      notify("unitune: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      return
    end
    notify(table.concat(status_lines(status or {}), "\n"))
  end, client)
end

--- :UnituneCancel: cancel the running generation or training.
function M.cancel()
  local client = any_client()
  local cancelled = 0
  if client then
    for token, _ in pairs(progress_titles) do
      client_notify(client, "window/workDoneProgress/cancel", { token = token })
      cancelled = cancelled + 1
    end
  end
  if cancelled == 0 then
    notify("unitune: nothing is running")
  end
end

--- Change settings while running: sent as workspace/didChangeConfiguration to every unitune server.
function M.update_settings(settings)
  M.config.settings = vim.tbl_extend("force", M.config.settings or {}, settings or {})
  for _, client in ipairs(all_clients()) do
    if client.name == NAME then
      client.config.settings = { unitune = M.config.settings }
      client_notify(client, "workspace/didChangeConfiguration", { settings = client.config.settings })
    end
  end
end

local function create_commands()
  local command = vim.api.nvim_create_user_command
  command("UnituneGenerate", function()
    M.generate()
  end, { desc = "unitune: generate unit tests for the function under the cursor" })
  command("UnituneAdapter", function(opts)
    M.adapter(opts.args)
  end, { nargs = "?", complete = complete_adapters, desc = "unitune: select the adapter (none: the bare model)" })
  command("UnituneStatus", function()
    M.status()
  end, { desc = "unitune: show the server's status" })
  command("UnituneCancel", function()
    M.cancel()
  end, { desc = "unitune: cancel the running generation or training" })
end

--- require("unitune").setup({ cmd?, python?, settings = {...}, filetypes?, root_markers?, ... })
function M.setup(options)
  M.config = vim.tbl_deep_extend("force", vim.deepcopy(defaults), options or {})
  if options and options.filetypes then
    M.config.filetypes = options.filetypes -- lists replace, not merge
  end
  if options and options.root_markers then
    M.config.root_markers = options.root_markers
  end
  create_commands()
  augroup = vim.api.nvim_create_augroup("unitune", { clear = true })
  vim.api.nvim_create_autocmd("FileType", {
    group = augroup,
    pattern = M.config.filetypes,
    callback = function(args)
      attach(args.buf)
    end,
    desc = "unitune: start or attach the language server",
  })
  -- buffers opened before setup() ran (lazy loading)
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr)
      and vim.tbl_contains(M.config.filetypes, vim.bo[bufnr].filetype) then
      attach(bufnr)
    end
  end
end

return M
