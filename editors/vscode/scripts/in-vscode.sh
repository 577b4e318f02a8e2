#!/usr/bin/env bash
# The extension in a real VS Code, headless: code-server with the packaged .vsix installed, driven by
# Chromium through playwright-core (scripts/in-vscode.mjs). It opens a copy of examples/python, puts
# the cursor in Account.deposit, runs the code action "Generate unit tests for `Account.deposit`",
# waits for the progress and for the test in tests/test_account.py, checks it and takes a screenshot
# (editors/vscode/screenshot-code-action.png unless --screenshot says otherwise).
#
#   scripts/in-vscode.sh [--install-only | --installed] [--vsix FILE] [--model DIR] [--python PYTHON]
#                        [--work DIR] [--screenshot FILE] [--timeout SECONDS]
#
# Installs what is missing first: Debian's chromium (and, for code-server's native modules, ripgrep,
# libkrb5-dev, build-essential, pkg-config) with apt-get when run as root; code-server and
# playwright-core from npm into $UNITUNE_VSCODE_CACHE (default ~/.cache/unitune-vscode; cache it in
# CI). No browser or binary is downloaded from anywhere else. Then packages the .vsix with
# scripts/check.sh (clean build, lint, unit tests, package) unless --vsix names one.
#
# --model: the model the language server uses; default: the tiny model unitune's test suite trains
# to answer the example (tests/conftest.py, cached in ~/.cache/unitune-tests/), so the check takes a
# minute, not the real model's. --python: the Python with unitune installed that runs the server
# (default: python3). --work: where the project copy, VS Code's user data and the logs go (default: a
# temporary folder, removed when the check passes). $UNITUNE_CHROMIUM: a Chromium to use instead.
#
# Exit status: 0 passed; 1 failed; 2 bad usage; 77 a tool is missing and could not be installed (the
# last line on stderr says which and how to install it).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
EXTENSION=$(dirname "$HERE")
REPO=$(cd "$EXTENSION/../.." && pwd)
CACHE=${UNITUNE_VSCODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/unitune-vscode}
# The last code-server release whose npm package runs on Node.js 20 (its postinstall insists on it).
CODE_SERVER_VERSION=${UNITUNE_CODE_SERVER_VERSION:-4.100.3}
CODE_SERVER_NODE=20
PLAYWRIGHT_VERSION=1.65.1

install_only=0 check_only=0 vsix='' model='' python=python3 work='' screenshot='' timeout=600
while [ $# -gt 0 ]; do
  case "$1" in
    --install-only) install_only=1; shift ;;
    --installed) check_only=1; shift ;;
    --vsix|--model|--python|--work|--screenshot|--timeout)
      [ $# -ge 2 ] || { echo "in-vscode.sh: $1 needs a value" >&2; exit 2; }
      declare "${1#--}=$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "in-vscode.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

missing() {
  echo "in-vscode.sh: $*" >&2
  exit 77
}
say() { echo "in-vscode.sh: $*" >&2; }

# --installed: whether what the check needs is here, installing nothing (exit 0, or 77 saying what is not)
if [ $check_only = 1 ]; then
  { command -v chromium || command -v chromium-browser || [ -n "${UNITUNE_CHROMIUM:-}" ]; } >/dev/null 2>&1 &&
    [ -f "$CACHE/code-server-$CODE_SERVER_VERSION/.installed" ] &&
    [ -f "$CACHE/playwright-core-$PLAYWRIGHT_VERSION/node_modules/playwright-core/package.json" ] ||
    missing "code-server, playwright-core or Chromium is not installed for the VS Code test: \`bash editors/vscode/scripts/in-vscode.sh --install-only\` installs them once (code-server from the npm registry into $CACHE, Chromium with apt-get as root)"
  exit 0
fi

updated=0
apt_install() {  # Debian packages, as root; fails quietly when that is not possible
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
  if [ $updated = 0 ]; then
    apt-get update -q >&2 || return 1
    updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >&2
}

# ---------------------------------------------------------------- Node.js and Chromium

command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
  missing "Node.js and npm are not installed (Node.js $CODE_SERVER_NODE: apt-get install nodejs npm, or nodejs.org)"
node_major=$(node -p 'process.versions.node.split(".")[0]')

find_chromium() { command -v chromium || command -v chromium-browser || true; }
chromium=${UNITUNE_CHROMIUM:-$(find_chromium)}
if [ -z "$chromium" ]; then
  say "installing Chromium (apt-get install chromium)"
  apt_install chromium || missing "Chromium is not installed and could not be installed: as root, apt-get install chromium (or set UNITUNE_CHROMIUM to a Chromium or Chrome)"
  chromium=$(find_chromium)
  [ -n "$chromium" ] || missing "apt-get installed chromium but there is no chromium command"
fi

# ---------------------------------------------------------------- code-server

code_server_dir=$CACHE/code-server-$CODE_SERVER_VERSION
code_server=$code_server_dir/node_modules/.bin/code-server
if [ ! -f "$code_server_dir/.installed" ]; then
  if [ -z "${UNITUNE_CODE_SERVER_VERSION:-}" ] && [ "$node_major" != "$CODE_SERVER_NODE" ]; then
    missing "code-server $CODE_SERVER_VERSION needs Node.js $CODE_SERVER_NODE, this is Node.js $(node --version); install Node.js $CODE_SERVER_NODE, or set UNITUNE_CODE_SERVER_VERSION to a code-server release for this one"
  fi
  # Its npm install builds native modules (kerberos needs the GSSAPI headers) and fetches ripgrep
  # from GitHub, which is given Debian's rg instead (below).
  need=()
  command -v rg >/dev/null 2>&1 || need+=(ripgrep)
  [ -f /usr/include/gssapi/gssapi.h ] || need+=(libkrb5-dev)
  { command -v g++ && command -v make; } >/dev/null 2>&1 || need+=(build-essential)
  command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
  if [ ${#need[@]} -gt 0 ]; then
    say "installing what code-server's npm install builds with: ${need[*]}"
    apt_install "${need[@]}" || missing "code-server's npm install needs ${need[*]} (Debian packages: apt-get install ${need[*]}) and they could not be installed"
  fi
  say "installing code-server $CODE_SERVER_VERSION from npm into $code_server_dir (a few minutes, once)"
  staging=$code_server_dir.partial
  rm -rf "$staging" && mkdir -p "$staging/tmp"
  echo '{"private": true}' > "$staging/package.json"
  (
    set -e  # (a subshell on the left of || would otherwise go on after a failure)
    cd "$staging"
    export TMPDIR=$staging/tmp npm_config_yes=true npm_config_unsafe_perm=true
    npm install --no-audit --no-fund --ignore-scripts "code-server@$CODE_SERVER_VERSION" >&2 || exit 1
    # @vscode/ripgrep's postinstall downloads rg from GitHub unless its download cache has it: put
    # Debian's rg there, packed as the release it asks for.
    ripgrep_package=$(node -p "require('./node_modules/code-server/lib/vscode/npm-shrinkwrap.json').packages['node_modules/@vscode/ripgrep'].version") || exit 1
    npm pack --silent "@vscode/ripgrep@$ripgrep_package" >/dev/null || exit 1
    ripgrep_release=$(tar -xzOf "vscode-ripgrep-$ripgrep_package.tgz" package/lib/postinstall.js | sed -n "s/^const VERSION = '\(.*\)';.*/\1/p")
    case "$(uname -m)" in
      x86_64) target=x86_64-unknown-linux-musl ;;
      aarch64) target=aarch64-unknown-linux-musl ;;
      *) target='' ;;
    esac
    if [ -n "$ripgrep_release" ] && [ -n "$target" ]; then
      mkdir -p tmp/rg "tmp/vscode-ripgrep-cache-$ripgrep_package" || exit 1
      cp "$(command -v rg)" tmp/rg/rg || exit 1
      tar -czf "tmp/vscode-ripgrep-cache-$ripgrep_package/ripgrep-$ripgrep_release-$target.tar.gz" -C tmp/rg rg || exit 1
    fi
    # The install scripts: code-server's postinstall runs `npm install` of VS Code's own dependencies
    # and builds their native modules.
    npm rebuild >&2 || exit 1
  ) || missing "npm could not install code-server $CODE_SERVER_VERSION (output above); see https://github.com/coder/code-server/blob/main/docs/npm.md"
  "$staging/node_modules/.bin/code-server" --config /dev/null --version >/dev/null 2>&1 </dev/null ||
    missing "code-server $CODE_SERVER_VERSION was installed but does not run ($staging)"
  rm -rf "$staging/tmp" "$staging"/vscode-ripgrep-*.tgz "$code_server_dir"
  touch "$staging/.installed"
  mv "$staging" "$code_server_dir"
fi

# ---------------------------------------------------------------- playwright-core

playwright_dir=$CACHE/playwright-core-$PLAYWRIGHT_VERSION
if [ ! -f "$playwright_dir/node_modules/playwright-core/package.json" ]; then
  say "installing playwright-core $PLAYWRIGHT_VERSION from npm into $playwright_dir"
  rm -rf "$playwright_dir.partial" && mkdir -p "$playwright_dir.partial"
  echo '{"private": true}' > "$playwright_dir.partial/package.json"
  (cd "$playwright_dir.partial" && npm install --no-audit --no-fund "playwright-core@$PLAYWRIGHT_VERSION" >&2) ||
    missing "npm could not install playwright-core $PLAYWRIGHT_VERSION (output above)"
  rm -rf "$playwright_dir" && mv "$playwright_dir.partial" "$playwright_dir"
fi

say "chromium: $chromium ($("$chromium" --version 2>/dev/null || echo 'version unknown'))"
say "code-server: $code_server ($("$code_server" --config /dev/null --version 2>/dev/null </dev/null | tail -n 1))"
say "playwright-core: $playwright_dir ($PLAYWRIGHT_VERSION)"
if [ $install_only = 1 ]; then
  exit 0
fi

# ---------------------------------------------------------------- the .vsix, the model, the run

if [ -z "$vsix" ]; then
  say "packaging the extension (scripts/check.sh)"
  bash "$HERE/check.sh" >&2
  vsix=$EXTENSION/unitune-$(node -p "require('$EXTENSION/package.json').version").vsix
fi
[ -f "$vsix" ] || { echo "in-vscode.sh: no .vsix at $vsix" >&2; exit 2; }

own_work=0
if [ -z "$work" ]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/unitune-vscode.XXXXXX")
  own_work=1
fi
mkdir -p "$work"
if [ -z "$model" ]; then
  say "the tiny model trained to answer the example (tests/conftest.py)"
  model=$(cd "$REPO" && "$python" -c 'import sys; sys.path.insert(0, "tests"); from pathlib import Path; import conftest
import shutil; shutil.rmtree(sys.argv[1], ignore_errors=True); print(conftest.trained_model(Path(sys.argv[1])))' "$work/model")
fi

set +e
node "$HERE/in-vscode.mjs" --code-server "$code_server" --playwright "$playwright_dir" --chromium "$chromium" \
  --vsix "$vsix" --model "$model" --python "$python" --work "$work" --timeout "$timeout" \
  ${screenshot:+--screenshot "$screenshot"}
status=$?
set -e
if [ $status = 0 ] && [ $own_work = 1 ]; then
  rm -rf "$work"
elif [ $status != 0 ]; then
  say "failed; the project, VS Code's logs and a screenshot are in $work"
fi
exit $status
