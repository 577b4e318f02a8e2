import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import {
    ALLOWED,
    configurationAnswer,
    DEFAULTS,
    explicitSettings,
    explicitValue,
    Inspected,
    RANGES,
    serverSection,
    SETTING_KEYS,
} from '../settings';

function inspectorOf(values: Record<string, Inspected>) {
    return (key: string) => values[key];
}

test('the settings keys are unitune\'s own, spelled as in unitune/settings.py', () => {
    assert.deepEqual([...SETTING_KEYS], [
        'model', 'adapter', 'quantization', 'device', 'engine', 'context', 'project_context', 'max_new_tokens', 'candidates',
        'validate', 'repair', 'time_budget', 'python', 'test_dir', 'framework', 'trust_remote_code', 'server_url',
    ]);
    assert.equal(DEFAULTS.model, 'qwen2.5-coder-0.5b-instruct');
    assert.equal(DEFAULTS.validate, 'run');
    assert.deepEqual(RANGES.time_budget, [5, 3600]);
    assert.equal(DEFAULTS.context, 'fm+fc+c+m+f');
    assert.equal(DEFAULTS.max_new_tokens, 256);
    assert.deepEqual(RANGES.candidates, [1, 64]);
    assert.deepEqual(ALLOWED.validate, ['none', 'syntax', 'run']);
});

test('the most specific scope the user set wins; defaults are never sent', () => {
    assert.equal(explicitValue(undefined), undefined);
    assert.equal(explicitValue({ defaultValue: 'unitune-mini' }), undefined);
    assert.equal(explicitValue({ defaultValue: 'a', globalValue: 'b' }), 'b');
    assert.equal(explicitValue({ globalValue: 'b', workspaceValue: 'c' }), 'c');
    assert.equal(explicitValue({ globalValue: 'b', workspaceValue: 'c', workspaceFolderValue: 'd' }), 'd');
    assert.equal(explicitValue({ globalValue: 'b', workspaceValue: null, workspaceFolderValue: '' }), 'b');
    assert.equal(explicitValue({ globalValue: false }), false);
    assert.equal(explicitValue({ globalValue: 0 }), 0);
});

test('explicitSettings keeps set DESIGN keys only', () => {
    const settings = explicitSettings(inspectorOf({
        model: { defaultValue: 'unitune-mini' },
        candidates: { defaultValue: 1, workspaceValue: 4 },
        trust_remote_code: { defaultValue: false, globalValue: false },
        adapter: { defaultValue: null, globalValue: null },
        framework: { workspaceFolderValue: 'junit5' },
        server: { globalValue: { pythonPath: '/usr/bin/python3' } },
        'trace.server': { globalValue: 'verbose' },
        unknown: { globalValue: 1 },
    }));
    assert.deepEqual(settings, { candidates: 4, framework: 'junit5', trust_remote_code: false });
});

test('serverSection drops client keys, unknown keys and unset values', () => {
    assert.deepEqual(serverSection({
        model: 'unitune-mini',
        adapter: null,
        test_dir: '',
        max_new_tokens: 512,
        server: { pythonPath: 'python3' },
        trace: { server: 'off' },
        other: 1,
    }), { model: 'unitune-mini', max_new_tokens: 512 });
});

test('workspace/configuration answers for our section, a key, and other sections', () => {
    const inspect = inspectorOf({ model: { globalValue: 'my/model' }, device: { defaultValue: 'auto' } });
    assert.deepEqual(configurationAnswer('unitune', inspect), { ours: true, value: { model: 'my/model' } });
    assert.deepEqual(configurationAnswer('unitune.model', inspect), { ours: true, value: 'my/model' });
    assert.deepEqual(configurationAnswer('unitune.device', inspect), { ours: true, value: null });
    assert.equal(configurationAnswer('unitune.server', inspect).ours, false);
    assert.equal(configurationAnswer('python', inspect).ours, false);
    assert.equal(configurationAnswer(undefined, inspect).ours, false);
    assert.equal(configurationAnswer('unitunex', inspect).ours, false);
});
