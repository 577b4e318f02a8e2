// package.json contributes what the pure modules expect: the settings, the commands, activation.
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { CLIENT_COMMANDS, LANGUAGES } from '../requests';
import { ALLOWED, DEFAULTS, RANGES, SETTING_KEYS } from '../settings';

// out/test/ -> the extension folder
const manifest = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8'));
const properties: Record<string, Record<string, unknown>> = manifest.contributes.configuration.properties;

test('identity and entry point', () => {
    assert.equal(manifest.name, 'unitune');
    assert.equal(manifest.publisher, 'unitune');
    assert.equal(manifest.version, '0.1.0');
    assert.equal(manifest.main, './out/extension.js');
    assert.deepEqual(manifest.activationEvents, LANGUAGES.map((language) => `onLanguage:${language}`));
});

test('every DESIGN setting is contributed with its default, range and values', () => {
    for (const key of SETTING_KEYS) {
        const property = properties[`unitune.${key}`];
        assert.ok(property, `unitune.${key} is missing`);
        assert.deepEqual(property.default, DEFAULTS[key], key);
        assert.equal(typeof property.markdownDescription, 'string', key);
        const allowed = ALLOWED[key];
        if (allowed) {
            assert.deepEqual(property.enum, allowed, key);
        }
        const range = RANGES[key];
        if (range) {
            assert.equal(property.type, 'integer', key);
            assert.deepEqual([property.minimum, property.maximum], range, key);
        }
    }
});

test('client settings are contributed, and nothing unknown', () => {
    const expected = new Set([
        ...SETTING_KEYS.map((key) => `unitune.${key}`),
        'unitune.server.pythonPath',
        'unitune.server.command',
        'unitune.trace.server',
    ]);
    assert.deepEqual(new Set(Object.keys(properties)), expected);
    assert.deepEqual(properties['unitune.trace.server'].enum, ['off', 'messages', 'verbose']);
    for (const [key, property] of Object.entries(properties)) {
        assert.equal(typeof property.markdownDescription, 'string', key);
    }
});

test('every client command is contributed under the category unitune', () => {
    const contributed = new Map<string, { title: string; category: string }>(
        manifest.contributes.commands.map((c: { command: string; title: string; category: string }) => [c.command, c]),
    );
    const titles: Record<string, string> = {
        [CLIENT_COMMANDS.generateTests]: 'Generate tests',
        [CLIENT_COMMANDS.selectAdapter]: 'Select adapter',
        [CLIENT_COMMANDS.trainAdapter]: 'Train adapter',
        [CLIENT_COMMANDS.showStatus]: 'Show status',
        [CLIENT_COMMANDS.restartServer]: 'Restart server',
    };
    assert.equal(contributed.size, Object.keys(titles).length);
    for (const [command, title] of Object.entries(titles)) {
        assert.equal(contributed.get(command)?.title, title, command);
        assert.equal(contributed.get(command)?.category, 'unitune', command);
    }
});

test('engines and @types/vscode agree (vsce refuses a newer @types/vscode)', () => {
    const engine = String(manifest.engines.vscode).replace(/^\^/, '');
    const types = String(manifest.devDependencies['@types/vscode']).replace(/^[~^]/, '');
    assert.equal(types.split('.').slice(0, 2).join('.'), engine.split('.').slice(0, 2).join('.'));
});
