// The unitune VS Code extension: starts `<python> -m unitune.server` over stdio and offers the
// server's commands from the command palette. Everything the unit tests cover lives in the pure
// modules (settings, names, serverCommand, requests, present); this file is the glue to VS Code.

import { execFile } from 'child_process';
import * as os from 'os';
import * as vscode from 'vscode';
import { PVSC_EXTENSION_ID, PythonExtension } from '@vscode/python-extension';
import {
    CloseAction,
    DidChangeConfigurationNotification,
    ErrorAction,
    ErrorHandler,
    ExecuteCommandRequest,
    LanguageClient,
    LanguageClientOptions,
    LSPErrorCodes,
    ResponseError,
    RevealOutputChannelOn,
    ServerOptions,
    State,
} from 'vscode-languageclient/node';

import { DEFAULT_TRAINING_METHOD, suggestAdapterName, TRAINING_METHODS, TrainingMethod, validateAdapterName } from './names';
import { adapterPicks, commandOutcome, currentAdapter, formatStatus, parseAdapters, resultMessage, summarizeStatus } from './present';
import {
    CLIENT_COMMANDS,
    ExecuteCommandParams,
    generateTestsRequest,
    isSupportedLanguage,
    LANGUAGES,
    listAdaptersRequest,
    selectAdapterRequest,
    statusRequest,
    trainAdapterRequest,
} from './requests';
import { describeStartFailure, formatCommand, ProbeResult, resolveServerCommand, ServerCommand } from './serverCommand';
import { configurationAnswer, explicitSettings, Inspector, RESTART_KEYS, SECTION } from './settings';

/** Start failures get the extension's own message (which Python, how to install unitune). */
class UnituneClient extends LanguageClient {
    override error(message: string, data?: unknown, showNotification: boolean | 'force' = true): void {
        if (message.includes("couldn't create connection to server")) {
            showNotification = false;
        }
        super.error(message, data, showNotification);
    }
}

let output: vscode.OutputChannel;
let client: UnituneClient | undefined;
let serverCommand: ServerCommand | undefined;
/** Starts, stops and restarts run one after another. */
let lifecycle: Promise<unknown> = Promise.resolve();
let pythonHooked = false;
let extensionContext: vscode.ExtensionContext;

export function activate(context: vscode.ExtensionContext): void {
    extensionContext = context;
    output = vscode.window.createOutputChannel('unitune');
    context.subscriptions.push(
        output,
        vscode.commands.registerCommand(CLIENT_COMMANDS.generateTests, generateTests),
        vscode.commands.registerCommand(CLIENT_COMMANDS.selectAdapter, selectAdapter),
        vscode.commands.registerCommand(CLIENT_COMMANDS.trainAdapter, trainAdapter),
        vscode.commands.registerCommand(CLIENT_COMMANDS.showStatus, showStatus),
        vscode.commands.registerCommand(CLIENT_COMMANDS.restartServer, async () => {
            if (await restart('restart requested')) {
                void vscode.window.showInformationMessage('unitune: the language server was restarted.');
            }
        }),
        vscode.workspace.onDidChangeConfiguration((event) => {
            if (RESTART_KEYS.some((key) => event.affectsConfiguration(`${SECTION}.${key}`))) {
                void restart('the server command settings changed');
            }
        }),
    );
    void serialize(startClient);
}

export async function deactivate(): Promise<void> {
    await serialize(stopClient);
}

function serialize<T>(step: () => Promise<T>): Promise<T> {
    const next = lifecycle.then(step, step);
    lifecycle = next.catch(() => undefined);
    return next;
}

function restart(reason: string): Promise<boolean> {
    return serialize(async () => {
        output.appendLine(`[unitune] restarting the language server: ${reason}`);
        await stopClient();
        return startClient();
    });
}

// ---------------------------------------------------------------- the server process

/** The resource that decides the interpreter: the active file, else the first workspace folder. */
function scopeResource(): vscode.Uri | undefined {
    const active = vscode.window.activeTextEditor?.document.uri;
    if (active && vscode.workspace.getWorkspaceFolder(active)) {
        return active;
    }
    return vscode.workspace.workspaceFolders?.[0]?.uri;
}

async function pythonFromExtension(resource: vscode.Uri | undefined): Promise<string | undefined> {
    if (!vscode.extensions.getExtension(PVSC_EXTENSION_ID)) {
        return undefined;
    }
    try {
        const api = await PythonExtension.api();
        if (!pythonHooked) {
            pythonHooked = true;
            extensionContext.subscriptions.push(
                api.environments.onDidChangeActiveEnvironmentPath(async () => {
                    // Only when the server runs with an interpreter no setting names, and it changed.
                    const source = serverCommand?.source;
                    if (source !== 'the Python extension' && source !== 'the default') {
                        return;
                    }
                    const python = await pythonFromExtension(scopeResource());
                    if (python && python !== serverCommand?.python) {
                        void restart(`the Python extension selected ${python}`);
                    }
                }),
            );
        }
        const environmentPath = api.environments.getActiveEnvironmentPath(resource);
        const environment = await api.environments.resolveEnvironment(environmentPath);
        const executable = environment?.executable.uri?.fsPath;
        if (!executable) {
            output.appendLine(`[unitune] the Python extension's interpreter ${environmentPath.path} has no Python executable; using the default.`);
        }
        return executable;
    } catch (error) {
        output.appendLine(`[unitune] could not ask the Python extension for its interpreter: ${String(error)}`);
        return undefined;
    }
}

async function resolveCommand(): Promise<{ command: ServerCommand; cwd: string | undefined }> {
    const resource = scopeResource();
    const config = vscode.workspace.getConfiguration(SECTION, resource);
    const folder = resource ? vscode.workspace.getWorkspaceFolder(resource) : undefined;
    const commandSetting = config.get<unknown>('server.command');
    const pythonPath = config.get<unknown>('server.pythonPath');
    const overridden = (Array.isArray(commandSetting) && commandSetting.length > 0) ||
        (typeof pythonPath === 'string' && pythonPath.trim() !== '');
    const command = resolveServerCommand({
        command: commandSetting,
        pythonPath,
        pythonFromExtension: overridden ? undefined : await pythonFromExtension(resource),
        platform: process.platform,
        variables: { workspaceFolder: folder?.uri.fsPath, userHome: os.homedir(), env: process.env },
    });
    return { command, cwd: folder?.uri.fsPath ?? vscode.workspace.workspaceFolders?.[0]?.uri.fsPath };
}

/** Settings of one scope (a folder URI from the server, or none) as the user set them. */
function inspector(scopeUri: string | undefined): Inspector {
    const scope = scopeUri !== undefined ? vscode.Uri.parse(scopeUri) : undefined;
    const config = vscode.workspace.getConfiguration(SECTION, scope);
    return (key) => config.inspect(key);
}

function makeErrorHandler(wasRunning: () => boolean): ErrorHandler {
    const closes: number[] = [];
    return {
        error: (_error, _message, count) => ({ action: (count ?? 0) <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown }),
        closed: () => {
            if (!wasRunning()) {
                // It never got going: startClient() explains why, once.
                return { action: CloseAction.DoNotRestart, handled: true };
            }
            closes.push(Date.now());
            if (closes.length > 4) {
                closes.shift();
                if (closes[closes.length - 1] - closes[0] <= 3 * 60 * 1000) {
                    void showError(
                        'unitune: the language server stopped 5 times in 3 minutes and is not restarted again. ' +
                            'The output channel "unitune" has its error output; fix the cause, then run "unitune: Restart server".',
                    );
                    return { action: CloseAction.DoNotRestart, handled: true };
                }
            }
            output.appendLine('[unitune] the language server stopped; restarting it.');
            return { action: CloseAction.Restart, handled: true };
        },
    };
}

async function startClient(): Promise<boolean> {
    const { command, cwd } = await resolveCommand();
    serverCommand = command;
    for (const warning of command.warnings) {
        output.appendLine(`[unitune] ${warning}`);
        void vscode.window.showWarningMessage(`unitune: ${warning}`);
    }
    output.appendLine(`[unitune] starting the language server: ${formatCommand(command)} (from ${command.source})`);

    // No `transport`: the client talks over the process's stdin/stdout all the same, and with
    // TransportKind.stdio it would append `--stdio` to the command, which `unitune.server` refuses.
    const serverOptions: ServerOptions = {
        command: command.command,
        args: command.args,
        options: cwd ? { cwd } : {},
    };
    let running = false;
    const clientOptions: LanguageClientOptions = {
        documentSelector: LANGUAGES.map((language) => ({ scheme: 'file', language })),
        synchronize: { configurationSection: SECTION },
        initializationOptions: explicitSettings(inspector(undefined)),
        outputChannel: output,
        traceOutputChannel: output,
        revealOutputChannelOn: RevealOutputChannelOn.Never,
        errorHandler: makeErrorHandler(() => running),
        middleware: {
            workspace: {
                // Answer with the values the user set, so defaults never outrank the project's file.
                configuration: async (params, token, next) => {
                    const answers = params.items.map((item) => configurationAnswer(item.section, inspector(item.scopeUri)));
                    if (answers.every((answer) => answer.ours)) {
                        return answers.map((answer) => answer.value);
                    }
                    const others = await next(params, token);
                    if (others instanceof ResponseError) {
                        return others;
                    }
                    return answers.map((answer, i) => (answer.ours ? answer.value : others[i]));
                },
                didChangeConfiguration: async (_sections, _next) => {
                    await candidate.sendNotification(DidChangeConfigurationNotification.type, {
                        settings: { [SECTION]: explicitSettings(inspector(undefined)) },
                    });
                },
            },
        },
    };

    const candidate = new UnituneClient('unitune', 'unitune', serverOptions, clientOptions);
    candidate.onDidChangeState((event) => {
        if (event.newState === State.Running) {
            running = true;
        }
    });
    client = candidate;
    try {
        await candidate.start();
        output.appendLine('[unitune] the language server is running.');
        return true;
    } catch (error) {
        const probed = command.python ? await probePython(command.python, cwd) : undefined;
        const message = describeStartFailure(command, { error: String(error), probe: probed });
        output.appendLine(`[unitune] ${message}`);
        void showStartFailure(message);
        return false;
    }
}

async function stopClient(): Promise<void> {
    const old = client;
    client = undefined;
    if (!old) {
        return;
    }
    try {
        await old.dispose(5000);
    } catch (error) {
        output.appendLine(`[unitune] stopping the language server: ${String(error)}`);
    }
}

/** `<python> -c "import unitune.server"`: tells a missing Python from a missing unitune. */
function probePython(python: string, cwd: string | undefined): Promise<ProbeResult> {
    return new Promise((resolve) => {
        execFile(python, ['-c', 'import unitune.server'], { cwd, timeout: 30000, windowsHide: true }, (error, _stdout, stderr) => {
            if (!error) {
                resolve({ exitCode: 0, stderr });
                return;
            }
            const code = (error as NodeJS.ErrnoException).code;
            if (typeof code === 'string') {
                resolve({ spawnErrorCode: code, stderr });
            } else {
                resolve({ exitCode: typeof code === 'number' ? code : null, stderr });
            }
        });
    });
}

async function showStartFailure(message: string): Promise<void> {
    const actions = ['Open settings', 'Show output', 'Retry'];
    if (vscode.extensions.getExtension(PVSC_EXTENSION_ID)) {
        actions.splice(1, 0, 'Select interpreter');
    }
    const choice = await vscode.window.showErrorMessage(message, ...actions);
    if (choice === 'Open settings') {
        await vscode.commands.executeCommand('workbench.action.openSettings', `${SECTION}.server`);
    } else if (choice === 'Select interpreter') {
        await vscode.commands.executeCommand('python.setInterpreter');
    } else if (choice === 'Show output') {
        output.show(true);
    } else if (choice === 'Retry') {
        await restart('retry after a failed start');
    }
}

async function showError(message: string): Promise<void> {
    const choice = await vscode.window.showErrorMessage(message, 'Show output', 'Restart server');
    if (choice === 'Show output') {
        output.show(true);
    } else if (choice === 'Restart server') {
        await restart('restart requested');
    }
}

// ---------------------------------------------------------------- requests

/** The client once it runs; undefined (after telling the user) when it does not. */
async function runningClient(): Promise<UnituneClient | undefined> {
    await lifecycle;
    if (client?.isRunning()) {
        return client;
    }
    const python = serverCommand ? ` (${formatCommand(serverCommand)})` : '';
    void showError(`unitune: the language server is not running${python}. The output channel "unitune" says why.`);
    return undefined;
}

type Outcome = { ok: true; value: unknown } | { ok: false };

async function execute(params: ExecuteCommandParams, quiet = false): Promise<Outcome> {
    const running = await runningClient();
    if (!running) {
        return { ok: false };
    }
    try {
        const value: unknown = await running.sendRequest(ExecuteCommandRequest.type, params);
        const outcome = commandOutcome(value);
        if (!outcome.ok) {
            // The server has shown the error (window/showMessage); keep it in the log too.
            output.appendLine(`[unitune] ${params.command}: ${outcome.error ?? JSON.stringify(value)}`);
            return { ok: false };
        }
        return { ok: true, value };
    } catch (error) {
        if (!quiet) {
            reportRequestError(params.command, error);
        }
        return { ok: false };
    }
}

function reportRequestError(command: string, error: unknown): void {
    if (error instanceof ResponseError) {
        if (error.code === LSPErrorCodes.RequestCancelled || error.code === LSPErrorCodes.ServerCancelled) {
            output.appendLine(`[unitune] ${command}: cancelled`);
            return;
        }
        output.appendLine(`[unitune] ${command} failed (${error.code}): ${error.message}`);
        void vscode.window.showErrorMessage(error.message.startsWith('unitune') ? error.message : `unitune: ${error.message}`);
        return;
    }
    output.appendLine(`[unitune] ${command} failed: ${String(error)}`);
    void vscode.window.showErrorMessage(`unitune: ${command} failed: ${error instanceof Error ? error.message : String(error)}`);
}

/** The folder a command is for: the active file's, the only one, or the one the user picks. */
async function pickFolder(placeHolder: string): Promise<{ cancelled: boolean; folder?: vscode.WorkspaceFolder }> {
    const folders = vscode.workspace.workspaceFolders ?? [];
    const active = vscode.window.activeTextEditor?.document.uri;
    const own = active ? vscode.workspace.getWorkspaceFolder(active) : undefined;
    if (own) {
        return { cancelled: false, folder: own };
    }
    if (folders.length <= 1) {
        return { cancelled: false, folder: folders[0] };
    }
    const folder = await vscode.window.showWorkspaceFolderPick({ placeHolder });
    return { cancelled: folder === undefined, folder };
}

// ---------------------------------------------------------------- commands

async function generateTests(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
        void vscode.window.showInformationMessage('unitune: open a Python or Java file and put the cursor in a function.');
        return;
    }
    const document = editor.document;
    if (!isSupportedLanguage(document.languageId)) {
        void vscode.window.showInformationMessage(`unitune writes tests for Python and Java; this file is ${document.languageId}.`);
        return;
    }
    if (document.uri.scheme !== 'file') {
        void vscode.window.showInformationMessage('unitune: save the file first; it works on files on disk.');
        return;
    }
    const running = await runningClient();
    if (!running) {
        return;
    }
    const position = editor.selection.active;
    const uri = running.code2ProtocolConverter.asUri(document.uri);
    const outcome = await execute(generateTestsRequest(uri, { line: position.line, character: position.character }));
    if (outcome.ok && !commandOutcome(outcome.value).reported) {
        const message = resultMessage(outcome.value, '');
        if (message) {
            void vscode.window.showInformationMessage(message);
        }
    }
}

async function selectAdapter(): Promise<void> {
    const { cancelled, folder } = await pickFolder('The workspace folder whose adapter to set');
    if (cancelled) {
        return;
    }
    const running = await runningClient();
    if (!running) {
        return;
    }
    const folderUri = folder ? running.code2ProtocolConverter.asUri(folder.uri) : undefined;
    const [listed, status] = await Promise.all([execute(listAdaptersRequest()), execute(statusRequest(), true)]);
    if (!listed.ok) {
        return;
    }
    const adapters = parseAdapters(listed.value);
    const current = status.ok ? currentAdapter(status.value, folderUri) : undefined;
    const picks = adapterPicks(adapters, current);
    const pick = await vscode.window.showQuickPick(picks, {
        title: 'unitune: Select adapter',
        placeHolder: (folder ? `The adapter for ${folder.name}` : 'The adapter') +
            (adapters.length === 0 ? ' (no adapters yet: "unitune: Train adapter" makes one)' : ''),
        matchOnDescription: true,
        matchOnDetail: true,
    });
    if (!pick) {
        return;
    }
    const outcome = await execute(selectAdapterRequest(pick.name, folderUri));
    if (outcome.ok && !commandOutcome(outcome.value).reported) {
        const chosen = pick.name === null ? 'the bare model' : `adapter "${pick.name}"`;
        const where = folder ? ` in ${folder.name}` : '';
        void vscode.window.showInformationMessage(resultMessage(outcome.value, `unitune: using ${chosen}${where}.`));
    }
}

async function trainAdapter(): Promise<void> {
    const { cancelled, folder } = await pickFolder('The workspace folder (repository) to train on');
    if (cancelled) {
        return;
    }
    if (!folder) {
        void vscode.window.showInformationMessage('unitune: open the repository to learn from as a folder first.');
        return;
    }
    const items = TRAINING_METHODS.map((method) => ({
        label: method.label,
        description: method.description,
        method,
        picked: method.id === DEFAULT_TRAINING_METHOD,
    }));
    const picked = await vscode.window.showQuickPick(items, {
        title: `unitune: Train adapter on ${folder.name} (1/2)`,
        placeHolder: 'Fine-tuning method (lora is the default)',
        matchOnDescription: true,
    });
    if (!picked) {
        return;
    }
    const method: TrainingMethod = picked.method;
    const name = await vscode.window.showInputBox({
        title: `unitune: Train adapter on ${folder.name} (2/2)`,
        prompt: 'Adapter name: lower-case letters, digits, ".", "_", "-"; at most 64 characters',
        value: suggestAdapterName(folder.name, method.id),
        validateInput: validateAdapterName,
    });
    if (name === undefined) {
        return;
    }
    const running = await runningClient();
    if (!running) {
        return;
    }
    const folderUri = running.code2ProtocolConverter.asUri(folder.uri);
    output.appendLine(`[unitune] training adapter "${name}" (${method.id}) on ${folder.uri.fsPath}`);
    const outcome = await execute(trainAdapterRequest({ folder: folderUri, method: method.id, name }));
    if (outcome.ok && !commandOutcome(outcome.value).reported) {
        void vscode.window.showInformationMessage(
            resultMessage(outcome.value, `unitune: training adapter "${name}" (${method.id}) on ${folder.name} has ended; "unitune: Select adapter" switches to it.`),
        );
    }
}

async function showStatus(): Promise<void> {
    const outcome = await execute(statusRequest());
    if (!outcome.ok) {
        return;
    }
    output.appendLine(`[unitune] status (${new Date().toLocaleString()}), server command: ${serverCommand ? formatCommand(serverCommand) : 'unknown'}`);
    output.appendLine(formatStatus(outcome.value));
    const choice = await vscode.window.showInformationMessage(summarizeStatus(outcome.value), 'Show output');
    if (choice === 'Show output') {
        output.show(true);
    }
}
