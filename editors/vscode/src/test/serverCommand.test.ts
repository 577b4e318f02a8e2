import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import { classifyStartFailure, defaultPython, describeStartFailure, expandVariables, formatCommand, resolveServerCommand } from '../serverCommand';

test('default: python3 -m unitune.server (python on Windows)', () => {
    const command = resolveServerCommand({ platform: 'linux' });
    assert.deepEqual(command, { command: 'python3', args: ['-m', 'unitune.server'], python: 'python3', source: 'the default', warnings: [] });
    assert.equal(resolveServerCommand({ platform: 'win32' }).command, 'python');
    assert.equal(defaultPython('darwin'), 'python3');
});

test('the Python extension interpreter comes before the default', () => {
    const command = resolveServerCommand({ platform: 'linux', pythonFromExtension: '/proj/.venv/bin/python' });
    assert.equal(command.command, '/proj/.venv/bin/python');
    assert.deepEqual(command.args, ['-m', 'unitune.server']);
    assert.equal(command.source, 'the Python extension');
});

test('unitune.server.pythonPath comes before the Python extension, with variables expanded', () => {
    const command = resolveServerCommand({
        platform: 'linux',
        pythonPath: '${workspaceFolder}/.venv/bin/python',
        pythonFromExtension: '/usr/bin/python3',
        variables: { workspaceFolder: '/proj' },
    });
    assert.equal(command.command, '/proj/.venv/bin/python');
    assert.equal(command.python, '/proj/.venv/bin/python');
    assert.equal(command.source, 'unitune.server.pythonPath');
});

test('unitune.server.command comes first and is used as it is', () => {
    const command = resolveServerCommand({
        platform: 'linux',
        command: ['~/venv/bin/unitune', 'serve'],
        pythonPath: '/usr/bin/python3',
        variables: { userHome: '/home/me' },
    });
    assert.deepEqual({ command: command.command, args: command.args, python: command.python }, {
        command: '/home/me/venv/bin/unitune', args: ['serve'], python: undefined,
    });
    assert.equal(command.source, 'unitune.server.command');
});

test('bad settings are ignored with a warning', () => {
    const badCommand = resolveServerCommand({ platform: 'linux', command: ['python3', ''], pythonPath: '/py' });
    assert.equal(badCommand.source, 'unitune.server.pythonPath');
    assert.equal(badCommand.warnings.length, 1);
    const stringCommand = resolveServerCommand({ platform: 'linux', command: 'python3 -m unitune.server' });
    assert.equal(stringCommand.source, 'the default');
    assert.match(stringCommand.warnings[0], /list of strings/);
    const badPython = resolveServerCommand({ platform: 'linux', pythonPath: 42 });
    assert.equal(badPython.source, 'the default');
    assert.match(badPython.warnings[0], /pythonPath is ignored/);
    assert.deepEqual(resolveServerCommand({ platform: 'linux', command: [], pythonPath: null }).warnings, []);
    assert.deepEqual(resolveServerCommand({ platform: 'linux', pythonPath: '  ' }).warnings, []);
});

test('expandVariables', () => {
    const vars = { workspaceFolder: '/w', userHome: '/h', env: { VENV: '/v' } };
    assert.equal(expandVariables('${env:VENV}/bin/python', vars), '/v/bin/python');
    assert.equal(expandVariables('${env:MISSING}x', vars), 'x');
    assert.equal(expandVariables('${userHome}/py', vars), '/h/py');
    assert.equal(expandVariables('~/py', vars), '/h/py');
    assert.equal(expandVariables('a~/py', vars), 'a~/py');
    assert.equal(expandVariables('${workspaceFolder}/x', {}), '${workspaceFolder}/x');
});

test('formatCommand quotes what a shell would split', () => {
    assert.equal(formatCommand({ command: 'python3', args: ['-m', 'unitune.server'] }), 'python3 -m unitune.server');
    assert.equal(formatCommand({ command: '/My Apps/python', args: ['-m', 'unitune.server'] }), '"/My Apps/python" -m unitune.server');
});

test('start failures are told apart', () => {
    assert.equal(classifyStartFailure({ probe: { spawnErrorCode: 'ENOENT' } }), 'not-found');
    assert.equal(classifyStartFailure({ probe: { spawnErrorCode: 'EACCES' } }), 'not-executable');
    assert.equal(classifyStartFailure({ probe: { exitCode: 1, stderr: "ModuleNotFoundError: No module named 'unitune'\n" } }), 'not-installed');
    assert.equal(classifyStartFailure({ probe: { exitCode: 1, stderr: "ImportError: cannot import name 'x'" } }), 'broken-install');
    assert.equal(classifyStartFailure({ probe: { exitCode: 0, stderr: '' } }), 'server-failed');
    assert.equal(classifyStartFailure({ error: 'Launching server using command python3 failed. Error: spawn python3 ENOENT' }), 'not-found');
    assert.equal(classifyStartFailure({ error: 'Connection closed' }), 'server-failed');
});

test('start failure messages name the python and how to install unitune', () => {
    const command = resolveServerCommand({ platform: 'linux', pythonFromExtension: '/proj/.venv/bin/python' });
    const notInstalled = describeStartFailure(command, { probe: { exitCode: 1, stderr: "No module named 'unitune'" } });
    assert.match(notInstalled, /\/proj\/\.venv\/bin\/python/);
    assert.match(notInstalled, /the Python extension/);
    assert.match(notInstalled, /-m pip install unitune/);
    assert.match(notInstalled, /unitune\.server\.pythonPath/);

    const notFound = describeStartFailure(resolveServerCommand({ platform: 'linux', pythonPath: '/nope/python' }), { probe: { spawnErrorCode: 'ENOENT' } });
    assert.match(notFound, /`\/nope\/python` \(from unitune\.server\.pythonPath\) was not found/);
    assert.match(notFound, /pip install unitune/);

    const broken = describeStartFailure(command, { probe: { exitCode: 1, stderr: 'Traceback\nImportError: cannot import name x\n' } });
    assert.match(broken, /ImportError: cannot import name x/);

    const failed = describeStartFailure(command, { probe: { exitCode: 0 } });
    assert.match(failed, /exited before it started/);
    assert.match(failed, /pip install unitune/);

    const custom = resolveServerCommand({ platform: 'linux', command: ['/opt/unitune', 'serve'] });
    assert.match(describeStartFailure(custom, { error: 'spawn /opt/unitune ENOENT' }), /`\/opt\/unitune` was not found/);
    assert.match(describeStartFailure(custom, { error: 'closed' }), /unitune\.server\.command/);
});
