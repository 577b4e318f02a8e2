-- unitune: nothing starts until require("unitune").setup({...}) is called (see README.md).
if vim.g.loaded_unitune then
  return
end
vim.g.loaded_unitune = 1

if vim.fn.has("nvim-0.7") == 0 then
  vim.api.nvim_err_writeln("unitune needs Neovim 0.7 or later")
end
