import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import { adapterPicks, commandOutcome, currentAdapter, formatStatus, NO_ADAPTER_LABEL, parseAdapters, resultMessage, sameUri, summarizeStatus } from '../present';

const listed = [
    { name: 'bank-lora', method: 'lora', store: '/w/.unitune/adapters', base_model: 'unitune-mini', ok: true, problems: [] },
    { name: 'old-ia3', method: 'ia3', store: '/home/me/.local/share/unitune/adapters', base_model: 'other/model', ok: false, problems: ['trained on other/model, not unitune-mini'] },
    { method: 'lora' },
    'junk',
];

test('parseAdapters accepts a list or {adapters}, skips entries without a name', () => {
    const adapters = parseAdapters(listed);
    assert.deepEqual(adapters.map((a) => a.name), ['bank-lora', 'old-ia3']);
    assert.equal(adapters[1].ok, false);
    assert.deepEqual(parseAdapters({ adapters: listed }).map((a) => a.name), ['bank-lora', 'old-ia3']);
    assert.deepEqual(parseAdapters(null), []);
    assert.deepEqual(parseAdapters({ adapters: 'x' }), []);
});

test('adapter picks: the bare model first, current marked, problems shown', () => {
    const picks = adapterPicks(parseAdapters(listed), 'bank-lora');
    assert.equal(picks[0].label, NO_ADAPTER_LABEL);
    assert.equal(picks[0].name, null);
    assert.equal(picks[1].label, '$(check) bank-lora');
    assert.equal(picks[1].description, 'lora · on unitune-mini · current');
    assert.equal(picks[1].detail, 'store: /w/.unitune/adapters');
    assert.equal(picks[2].label, '$(warning) old-ia3');
    assert.equal(picks[2].detail, 'trained on other/model, not unitune-mini');
    const none = adapterPicks([], null);
    assert.equal(none.length, 1);
    assert.equal(none[0].label, '$(check) ' + NO_ADAPTER_LABEL);
});

const status = {
    version: '0.1.0',
    folders: [
        { uri: 'file:///w/bank', model: 'unitune-mini', adapter: 'bank-lora' },
        { uri: 'file:///w/shop', model: 'unitune-mini', adapter: null },
    ],
    runtime: { state: 'loaded', model: 'unitune-mini', device: 'cpu', quantization: 'none', active_adapter: 'bank-lora' },
};

test('currentAdapter finds the folder by URI', () => {
    assert.equal(currentAdapter(status, 'file:///w/bank'), 'bank-lora');
    assert.equal(currentAdapter(status, 'file:///w/bank/'), 'bank-lora');
    assert.equal(currentAdapter(status, 'file:///w/shop'), null);
    assert.equal(currentAdapter(status, 'file:///w/else'), undefined);
    assert.equal(currentAdapter(status), undefined);
    assert.equal(currentAdapter({ folders: [{ uri: 'file:///w', adapter: { name: 'x' } }] }), 'x');
    assert.equal(currentAdapter('nonsense', 'file:///w'), undefined);
    assert.ok(sameUri('file:///c%3A/repo', 'file:///C:/repo'));
});

test('status summary and formatting', () => {
    assert.equal(
        summarizeStatus(status),
        'unitune 0.1.0 · runtime loaded: unitune-mini, on cpu, quantization none, adapter bank-lora · 2 folders',
    );
    assert.equal(
        summarizeStatus({ version: '0.1.0', folders: [{ uri: 'file:///w', model: 'm', adapter: null }], runtime: { state: 'idle', model: null } }),
        'unitune 0.1.0 · runtime idle · folder: model m, adapter none',
    );
    assert.match(summarizeStatus(42), /answered 42/);
    assert.equal(formatStatus({ a: 1 }), '{\n  "a": 1\n}');
});

test('resultMessage prefers the server message', () => {
    assert.equal(resultMessage({ message: 'done' }, 'fallback'), 'done');
    assert.equal(resultMessage('text', 'fallback'), 'text');
    assert.equal(resultMessage(null, 'fallback'), 'fallback');
    assert.equal(resultMessage({ message: '' }, 'fallback'), 'fallback');
});

test('commandOutcome: {ok, error} answers were reported by the server; plain answers are results', () => {
    assert.deepEqual(commandOutcome({ ok: false, error: 'training is not available' }), { ok: false, error: 'training is not available', reported: true });
    assert.deepEqual(commandOutcome({ ok: true, adapter: null, folder: 'file:///w' }), { ok: true, error: undefined, reported: true });
    assert.deepEqual(commandOutcome([]), { ok: true, reported: false });
    assert.deepEqual(commandOutcome(null), { ok: true, reported: false });
    assert.deepEqual(commandOutcome({ version: '0.1.0' }), { ok: true, reported: false });
});
