import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import {
    CLIENT_COMMANDS,
    generateTestsRequest,
    isSupportedLanguage,
    listAdaptersRequest,
    selectAdapterRequest,
    SERVER_COMMANDS,
    statusRequest,
    trainAdapterRequest,
} from '../requests';

test('generateTests carries the URI and an LSP position', () => {
    const position = { line: 15, character: 4, extra: 'dropped' };
    assert.deepEqual(generateTestsRequest('file:///w/bank/account.py', position), {
        command: 'unitune.generateTests',
        arguments: ['file:///w/bank/account.py', { line: 15, character: 4 }],
    });
});

test('selectAdapter: name, optional folder; null is the bare model', () => {
    assert.deepEqual(selectAdapterRequest('bank-lora'), { command: 'unitune.selectAdapter', arguments: ['bank-lora'] });
    assert.deepEqual(selectAdapterRequest('bank-lora', 'file:///w'), { command: 'unitune.selectAdapter', arguments: ['bank-lora', 'file:///w'] });
    assert.deepEqual(selectAdapterRequest(null, 'file:///w'), { command: 'unitune.selectAdapter', arguments: [null, 'file:///w'] });
});

test('listAdapters, status and trainAdapter', () => {
    assert.deepEqual(listAdaptersRequest(), { command: 'unitune.listAdapters', arguments: [] });
    assert.deepEqual(statusRequest(), { command: 'unitune.status', arguments: [] });
    assert.deepEqual(trainAdapterRequest({ folder: 'file:///w', method: 'ia3', name: 'w-ia3' }), {
        command: 'unitune.trainAdapter',
        arguments: [{ folder: 'file:///w', method: 'ia3', name: 'w-ia3' }],
    });
});

test('client commands never collide with the server commands the client registers', () => {
    const server = new Set<string>(Object.values(SERVER_COMMANDS));
    for (const command of Object.values(CLIENT_COMMANDS)) {
        assert.ok(command.startsWith('unitune.client.'), command);
        assert.ok(!server.has(command), command);
    }
});

test('languages: python and java', () => {
    assert.ok(isSupportedLanguage('python'));
    assert.ok(isSupportedLanguage('java'));
    assert.ok(!isSupportedLanguage('javascript'));
});
