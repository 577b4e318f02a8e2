import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import { ADAPTER_NAME_PATTERN, DEFAULT_TRAINING_METHOD, sanitizeName, suggestAdapterName, TRAINING_METHODS, validateAdapterName } from '../names';

test('valid adapter names pass', () => {
    for (const name of ['a', '0', 'bank-lora', 'my_adapter.v2', 'x'.repeat(64), '9-._']) {
        assert.equal(validateAdapterName(name), undefined, name);
        assert.ok(ADAPTER_NAME_PATTERN.test(name), name);
    }
});

test('invalid adapter names get a reason', () => {
    const cases: [string, RegExp][] = [
        ['', /Enter a name/],
        ['x'.repeat(65), /At most 64/],
        ['-lora', /Start with/],
        ['.hidden', /Start with/],
        ['_x', /Start with/],
        ['Bank', /Start with/],
        ['bank Lora', /" " is not allowed/],
        ['bank/lora', /"\/" is not allowed/],
        ['bankA', /"A" is not allowed/],
        ['café', /"é" is not allowed/],
    ];
    for (const [name, reason] of cases) {
        const message = validateAdapterName(name);
        assert.ok(message, `${name} should be refused`);
        assert.match(message, reason, name);
        assert.ok(!ADAPTER_NAME_PATTERN.test(name), name);
    }
});

test('sanitizeName makes valid names from folder names', () => {
    assert.equal(sanitizeName('My Project'), 'my-project');
    assert.equal(sanitizeName('__init__'), 'init');
    assert.equal(sanitizeName('Café-Ünïcode'), 'cafe-unicode');
    assert.equal(sanitizeName('...'), '');
    assert.equal(sanitizeName('日本'), '');
    assert.equal(sanitizeName('a'.repeat(100)).length, 64);
});

test('suggested names are valid', () => {
    assert.equal(suggestAdapterName('bank', 'lora'), 'bank-lora');
    assert.equal(suggestAdapterName('My Repo', 'prompt-tuning'), 'my-repo-prompt-tuning');
    assert.equal(suggestAdapterName('日本', 'ia3'), 'ia3');
    for (const folder of ['x'.repeat(200), '---', 'A B C', 'repo.']) {
        for (const method of TRAINING_METHODS) {
            const name = suggestAdapterName(folder, method.id);
            assert.equal(validateAdapterName(name), undefined, `${folder} ${method.id} -> ${name}`);
        }
    }
});

test('training methods: lora first and default', () => {
    assert.deepEqual(TRAINING_METHODS.map((m) => m.id), ['lora', 'ia3', 'prompt-tuning', 'full']);
    assert.equal(DEFAULT_TRAINING_METHOD, 'lora');
});
