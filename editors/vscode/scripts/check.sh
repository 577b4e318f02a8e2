#!/usr/bin/env bash
# Build, lint, test and package the VS Code extension from a clean tree: the same sequence a
# developer or CI runs. Produces unitune-<version>.vsix in editors/vscode/.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf node_modules out
npm ci
npm run compile
npm run lint
npm test
npm run package
