// The extension in a real VS Code: code-server with the packaged .vsix installed, driven by headless
// Chromium (playwright-core). Opens a copy of the Python example, puts the cursor in Account.deposit,
// runs the code action "Generate unit tests for `Account.deposit`" from the Quick Fix menu (Ctrl+.), waits
// for its progress (VS Code shows a language server's progress in the status bar) and for the test to
// land in tests/test_account.py, saves it, checks its text and takes a screenshot (and one of the
// menu, code-action-menu.png in the work folder).
//
// scripts/in-vscode.sh installs the tools and passes their paths; run that instead of this file.
// Prints `RESULT {json}` on its last line when it passed; exits 1 (with what it saw) when it failed.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..', '..');

const { values: opts } = parseArgs({
    options: {
        'code-server': { type: 'string' },
        playwright: { type: 'string' }, // the folder holding node_modules/playwright-core
        chromium: { type: 'string' },
        vsix: { type: 'string' },
        python: { type: 'string', default: 'python3' },
        model: { type: 'string' },
        example: { type: 'string', default: path.join(REPO, 'examples', 'python') },
        screenshot: { type: 'string', default: path.join(REPO, 'editors', 'vscode', 'screenshot-code-action.png') },
        work: { type: 'string' },
        timeout: { type: 'string', default: '600' },
    },
});
for (const name of ['code-server', 'playwright', 'chromium', 'vsix', 'model']) {
    if (!opts[name]) {
        console.error(`in-vscode.mjs: --${name} is required (run scripts/in-vscode.sh)`);
        process.exit(2);
    }
}

const FUNCTION = 'Account.deposit';
const SOURCE = 'bank/account.py';
const CURSOR = { line: 17, column: 9 }; // 1-based: in the body of Account.deposit
const TEST_FILE = 'tests/test_account.py';
const EXPECTED = ['def test_deposit():', 'assert account.deposit(5) == 5'];
const ACTION_TITLE = `Generate unit tests for \`${FUNCTION}\``;

const started = Date.now();
const deadline = started + Number(opts.timeout) * 1000;
const seconds = () => ((Date.now() - started) / 1000).toFixed(1);
const log = (message) => console.log(`[${seconds().padStart(6)} s] ${message}`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const timings = {};
const mark = (name) => { timings[name] = Number(seconds()); };

const work = opts.work ? path.resolve(opts.work) : fs.mkdtempSync(path.join(os.tmpdir(), 'unitune-vscode-'));
fs.mkdirSync(work, { recursive: true });
const project = path.join(work, 'python');
const userData = path.join(work, 'user-data');
const extensions = path.join(work, 'extensions');
const config = path.join(work, 'code-server.yaml');

// ---------------------------------------------------------------- the project and VS Code's settings

for (const stale of [project, userData, extensions, path.join(work, 'xdg'), path.join(work, 'unitune-home')]) {
    fs.rmSync(stale, { recursive: true, force: true });
}
fs.cpSync(opts.example, project, {
    recursive: true,
    filter: (source) => !['__pycache__', '.pytest_cache', 'tests'].includes(path.basename(source)) || source === opts.example,
});
fs.mkdirSync(path.join(project, '.vscode'), { recursive: true });
fs.writeFileSync(path.join(project, '.vscode', 'settings.json'), JSON.stringify({
    'unitune.model': path.resolve(opts.model),
    'unitune.server.pythonPath': opts.python,
}, null, 2));
fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
fs.writeFileSync(path.join(userData, 'User', 'settings.json'), JSON.stringify({
    'security.workspace.trust.enabled': false,
    'workbench.startupEditor': 'none',
    'workbench.tips.enabled': false,
    'workbench.enableExperiments': false,
    'workbench.secondarySideBar.defaultVisibility': 'hidden',
    'chat.commandCenter.enabled': false,
    'telemetry.telemetryLevel': 'off',
    'update.mode': 'none',
    'extensions.autoCheckUpdates': false,
    'extensions.autoUpdate': false,
    'extensions.ignoreRecommendations': true,
    'git.enabled': false,
    'editor.minimap.enabled': false,
    'files.autoSave': 'off',
}, null, 2));
fs.writeFileSync(config, '');

const env = {
    ...process.env,
    XDG_CONFIG_HOME: path.join(work, 'xdg', 'config'),
    XDG_DATA_HOME: path.join(work, 'xdg', 'data'),
    UNITUNE_HOME: path.join(work, 'unitune-home'),
    UNITUNE_CONFIG: path.join(work, 'unitune-config.toml'),
    HF_HUB_OFFLINE: '1',
    TRANSFORMERS_OFFLINE: '1',
    PYTHONUNBUFFERED: '1',
};
const common = ['--user-data-dir', userData, '--extensions-dir', extensions, '--config', config];

// ---------------------------------------------------------------- code-server

log(`code-server ${spawnSync(opts['code-server'], ['--config', config, '--version'], { env, encoding: 'utf8' }).stdout.trim().split('\n').pop()}`);
const install = spawnSync(opts['code-server'], [...common, '--install-extension', path.resolve(opts.vsix)], { env, encoding: 'utf8' });
if (install.status !== 0 || !/successfully installed/.test(install.stdout)) {
    console.error(`installing ${opts.vsix} failed (exit ${install.status}):\n${install.stdout}\n${install.stderr}`);
    process.exit(1);
}
log(`installed ${path.basename(opts.vsix)} into ${extensions}`);

const serverLog = [];
const codeServer = spawn(opts['code-server'], [
    ...common, '--auth', 'none', '--bind-addr', '127.0.0.1:0', '--disable-telemetry', '--disable-update-check',
    '--disable-workspace-trust', '--disable-getting-started-override', '--ignore-last-opened', project,
], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
const listening = new Promise((resolve, reject) => {
    const onData = (chunk) => {
        const text = chunk.toString();
        serverLog.push(text);
        const found = /HTTP server listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(serverLog.join(''));
        if (found) {
            resolve(found[1]);
        }
    };
    codeServer.stdout.on('data', onData);
    codeServer.stderr.on('data', onData);
    codeServer.on('exit', (code) => reject(new Error(`code-server exited with ${code}:\n${serverLog.join('')}`)));
    setTimeout(() => reject(new Error(`code-server did not listen within 60 s:\n${serverLog.join('')}`)), 60000);
});

function stopCodeServer() {
    if (codeServer.exitCode === null) {
        try {
            process.kill(-codeServer.pid, 'SIGTERM'); // its process group: the extension host and the language server too
        } catch {
            // already gone
        }
    }
}
process.on('exit', stopCodeServer);
for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => process.exit(130));
}

// ---------------------------------------------------------------- the browser

const require = createRequire(path.join(path.resolve(opts.playwright), 'package.json'));
const { chromium } = require('playwright-core');

let browser;
let page;
const failures = [];

async function until(what, condition, { timeout = 60000, interval = 250 } = {}) {
    const end = Math.min(Date.now() + timeout, deadline);
    let last;
    while (Date.now() < end) {
        try {
            last = await condition();
            if (last) {
                return last;
            }
        } catch (error) {
            last = error;
        }
        await sleep(interval);
    }
    throw new Error(`timed out waiting for ${what}${last instanceof Error ? ` (last error: ${last.message})` : ''}`);
}

/** The command palette: run a command by its title. */
async function runCommand(title) {
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible', timeout: 10000 });
    await input.fill(`>${title}`);
    const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
    await row.waitFor({ state: 'visible', timeout: 10000 });
    await page.keyboard.press('Enter');
    await input.waitFor({ state: 'hidden', timeout: 10000 });
}

/** The lines of the active editor, as shown (all of them: the files here fit the window). */
async function activeEditorText() {
    return page.evaluate(() => {
        const group = document.querySelector('.editor-group-container.active') ?? document;
        const lines = [...group.querySelectorAll('.monaco-editor .view-lines .view-line')]
            .map((line) => ({ top: parseFloat(line.style.top || '0'), text: line.textContent ?? '' }))
            .sort((a, b) => a.top - b.top);
        return lines.map((line) => line.text.replace(/\u00a0/g, ' ')).join('\n');
    });
}

async function activeTab() {
    return page.evaluate(() => document.querySelector('.editor-group-container.active .tab.active')?.getAttribute('aria-label') ?? '');
}

async function statusCursor() {
    return page.evaluate(() => {
        const item = [...document.querySelectorAll('.statusbar-item')].find((el) => /Ln \d+, Col \d+/.test(el.textContent ?? ''));
        return item?.textContent?.trim() ?? '';
    });
}

async function main() {
    const url = await listening;
    mark('code-server listening');
    log(`code-server listening at ${url}`);
    browser = await chromium.launch({ executablePath: opts.chromium, headless: true });
    log(`chromium ${browser.version()}`);
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
    page = await context.newPage();
    page.on('pageerror', (error) => failures.push(`page error: ${error.message}`));
    await page.goto(`${url}/?folder=${encodeURIComponent(project)}`);
    await page.locator('.monaco-workbench .part.editor').waitFor({ state: 'visible', timeout: 60000 });
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'bank' }).first().waitFor({ state: 'visible', timeout: 60000 });
    mark('workbench');
    log('the workbench is up');

    // Every notification that shows, and every text of the status bar's progress item (where VS Code
    // shows a language server's work-done progress), recorded as they appear.
    await page.evaluate(() => {
        const notes = (window.__unituneNotes = []);
        const progress = (window.__unituneProgress = []);
        const text = (element) => (element.textContent ?? '').replace(/\s+/g, ' ').trim();
        const record = () => {
            for (const item of document.querySelectorAll('.notifications-toasts .notification-list-item, .notifications-center .notification-list-item')) {
                const severity = item.querySelector('.codicon-error') ? 'error' : item.querySelector('.codicon-warning') ? 'warning' : 'info';
                const note = `${severity}: ${text(item)}`;
                if (!notes.includes(note)) {
                    notes.push(note);
                }
            }
            for (const item of document.querySelectorAll('.statusbar-item')) {
                const label = [text(item), item.getAttribute('aria-label') ?? ''].find((t) => t.includes('unitune:'));
                if (label && progress[progress.length - 1] !== label) {
                    progress.push(label);
                }
            }
        };
        new MutationObserver(record).observe(document.body, { childList: true, subtree: true, characterData: true, attributes: true });
    });
    const notes = async () => page.evaluate(() => [...window.__unituneNotes]);
    const progress = async () => page.evaluate(() => [...window.__unituneProgress]);

    // Open bank/account.py (Quick Open) and put the cursor in Account.deposit (Go to Line/Column).
    await page.keyboard.press('Control+P');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible', timeout: 10000 });
    await input.fill(SOURCE);
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'account.py' }).first().waitFor({ state: 'visible', timeout: 20000 });
    await page.keyboard.press('Enter');
    await until(`${SOURCE} in the editor`, async () => (await activeTab()).startsWith('account.py') && (await activeEditorText()).includes('def deposit'));
    log(`opened ${SOURCE}`);
    await page.keyboard.press('Control+G');
    await input.waitFor({ state: 'visible', timeout: 10000 });
    await input.fill(`:${CURSOR.line}:${CURSOR.column}`);
    await page.keyboard.press('Enter');
    await until(`the cursor at ${CURSOR.line}:${CURSOR.column}`, async () => (await statusCursor()).startsWith(`Ln ${CURSOR.line}, Col ${CURSOR.column}`), { timeout: 10000 });
    log(`cursor at line ${CURSOR.line}, column ${CURSOR.column} (in ${FUNCTION})`);

    // The code action (kind refactor.unitune.generateTests) in the Quick Fix menu (Ctrl+.), as a user
    // at the cursor opens it. The language server may still be starting: ask again until it offers it.
    const action = page.locator('.action-widget .monaco-list-row.action', { hasText: ACTION_TITLE }).first();
    let attempts = 0;
    await until(`the code action "${ACTION_TITLE}"`, async () => {
        attempts += 1;
        await page.keyboard.press('Escape');
        await page.keyboard.press('Control+.');
        try {
            await action.waitFor({ state: 'visible', timeout: 3000 });
            return true;
        } catch {
            return false;
        }
    }, { timeout: 180000, interval: 2000 });
    mark('code action offered');
    log(`the Quick Fix menu (Ctrl+.) offers "${ACTION_TITLE}" (attempt ${attempts})`);
    await page.screenshot({ path: path.join(work, 'code-action-menu.png') });
    log(`screenshot of the menu: ${path.join(work, 'code-action-menu.png')}`);
    // Pick it with the keyboard, as the menu's rows say ("Enter to Apply").
    for (let step = 0; step < 10; step++) {
        const focused = await page.locator('.action-widget .monaco-list-row.focused').first().getAttribute('aria-label').catch(() => null);
        if (focused === ACTION_TITLE) {
            break;
        }
        await page.keyboard.press('ArrowDown');
    }
    await page.keyboard.press('Enter');
    await action.waitFor({ state: 'hidden', timeout: 10000 });
    mark('code action picked');
    log('picked it');

    const progressTitle = `unitune: tests for ${FUNCTION}`;
    await until('the progress in the status bar', async () => (await progress()).some((text) => text.includes(progressTitle)), { timeout: 60000, interval: 100 });
    mark('progress shown');
    log(`progress: ${(await progress())[0]}`);

    const outcome = await until('the result message', async () => {
        const all = await notes();
        return all.find((note) => /^info: unitune: \d+ test\(s\) added to test_account\.py/.test(note)) ??
            all.find((note) => /^error: /.test(note));
    }, { timeout: Math.max(0, deadline - Date.now()), interval: 250 });
    if (outcome.startsWith('error: ')) {
        throw new Error(`VS Code showed an error: ${outcome.slice(7)}`);
    }
    const added = outcome.slice('info: '.length);
    mark('tests added');
    log(`result: ${added}`);

    await until(`${TEST_FILE} in the editor with the new test`, async () => {
        return (await activeTab()).startsWith('test_account.py') && (await activeEditorText()).includes(EXPECTED[0]);
    }, { timeout: 30000 });
    const shown = await activeEditorText();
    log(`${TEST_FILE} as shown:\n${shown}`);
    for (const part of EXPECTED) {
        if (!shown.includes(part)) {
            throw new Error(`the editor's ${TEST_FILE} lacks ${JSON.stringify(part)}`);
        }
    }

    // Save it (the edit leaves the buffer dirty, as any edit does) and check the file on disk.
    await page.keyboard.press('Control+S');
    const testPath = path.join(project, TEST_FILE);
    const saved = await until(`${TEST_FILE} saved`, async () => {
        const text = fs.existsSync(testPath) ? fs.readFileSync(testPath, 'utf8') : '';
        return EXPECTED.every((part) => text.includes(part)) ? text : undefined;
    }, { timeout: 15000 });
    mark('saved');
    log(`saved ${testPath}`);

    // Both files side by side for the screenshot: the source with the cursor, the new test.
    await runCommand('View: Move Editor into Right Group');
    await sleep(1000);
    await page.screenshot({ path: opts.screenshot });
    mark('screenshot');
    log(`screenshot: ${opts.screenshot}`);

    return { test_file: testPath, text: saved, notes: await notes(), progress: await progress(), timings, screenshot: opts.screenshot, work };
}

async function diagnostics() {
    const parts = [];
    if (page) {
        try {
            const shot = path.join(work, 'failure.png');
            await page.screenshot({ path: shot });
            parts.push(`screenshot of the failure: ${shot}`);
            parts.push(`notifications: ${JSON.stringify(await page.evaluate(() => window.__unituneNotes ?? []))}`);
            parts.push(`progress: ${JSON.stringify(await page.evaluate(() => window.__unituneProgress ?? []))}`);
        } catch (error) {
            parts.push(`(no screenshot: ${error.message})`);
        }
    }
    parts.push(...failures);
    const outputs = [];
    const walk = (dir) => {
        for (const entry of fs.existsSync(dir) ? fs.readdirSync(dir, { withFileTypes: true }) : []) {
            const full = path.join(dir, entry.name);
            if (entry.isDirectory()) {
                walk(full);
            } else if (/unitune\.log$|exthost\.log$|remoteagent\.log$/.test(entry.name)) {
                outputs.push(full);
            }
        }
    };
    walk(path.join(userData, 'logs'));
    walk(path.join(work, 'unitune-home', 'logs'));
    for (const file of outputs) {
        parts.push(`--- ${file} (tail) ---\n${fs.readFileSync(file, 'utf8').slice(-5000)}`);
    }
    parts.push(`--- code-server output (tail) ---\n${serverLog.join('').slice(-3000)}`);
    return parts.join('\n');
}

let status = 0;
try {
    const result = await main();
    mark('total');
    console.log(`RESULT ${JSON.stringify(result)}`);
} catch (error) {
    status = 1;
    console.error(`FAILED after ${seconds()} s: ${error.stack ?? error}`);
    console.error(await diagnostics());
} finally {
    await browser?.close().catch(() => undefined);
    stopCodeServer();
}
process.exit(status);
