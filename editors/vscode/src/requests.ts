// The server's `workspace/executeCommand` commands and their arguments. Pure: no `vscode` import.

export const SERVER_COMMANDS = {
    generateTests: 'unitune.generateTests',
    listAdapters: 'unitune.listAdapters',
    selectAdapter: 'unitune.selectAdapter',
    status: 'unitune.status',
    trainAdapter: 'unitune.trainAdapter',
} as const;

/** The extension's own commands (the palette); distinct from the server's, which the client registers. */
export const CLIENT_COMMANDS = {
    generateTests: 'unitune.client.generateTests',
    selectAdapter: 'unitune.client.selectAdapter',
    trainAdapter: 'unitune.client.trainAdapter',
    showStatus: 'unitune.client.showStatus',
    restartServer: 'unitune.client.restartServer',
} as const;

export const LANGUAGES = ['python', 'java'] as const;

/** An LSP position: 0-based line, 0-based character in UTF-16 code units (as in VS Code). */
export interface LspPosition {
    line: number;
    character: number;
}

export interface ExecuteCommandParams {
    command: string;
    arguments: unknown[];
}

export function isSupportedLanguage(languageId: string): boolean {
    return (LANGUAGES as readonly string[]).includes(languageId);
}

export function generateTestsRequest(uri: string, position: LspPosition): ExecuteCommandParams {
    return {
        command: SERVER_COMMANDS.generateTests,
        arguments: [uri, { line: position.line, character: position.character }],
    };
}

export function listAdaptersRequest(): ExecuteCommandParams {
    return { command: SERVER_COMMANDS.listAdapters, arguments: [] };
}

/** `name` null: the bare model. `folderUri`: the workspace folder whose settings record it. */
export function selectAdapterRequest(name: string | null, folderUri?: string): ExecuteCommandParams {
    return {
        command: SERVER_COMMANDS.selectAdapter,
        arguments: folderUri === undefined ? [name] : [name, folderUri],
    };
}

export function statusRequest(): ExecuteCommandParams {
    return { command: SERVER_COMMANDS.status, arguments: [] };
}

export interface TrainOptions {
    folder: string;
    method: 'lora' | 'ia3' | 'prompt-tuning' | 'full';
    name: string;
    [more: string]: unknown;
}

export function trainAdapterRequest(options: TrainOptions): ExecuteCommandParams {
    return { command: SERVER_COMMANDS.trainAdapter, arguments: [{ ...options }] };
}
