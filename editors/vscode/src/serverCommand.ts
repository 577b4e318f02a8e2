// Which command starts the language server, and what to tell the user when it does not start.
// Pure: no `vscode` import.

export const SERVER_MODULE = 'unitune.server';

export type CommandSource =
    | 'unitune.server.command'
    | 'unitune.server.pythonPath'
    | 'the Python extension'
    | 'the default';

export interface Variables {
    workspaceFolder?: string;
    userHome?: string;
    env?: Readonly<Record<string, string | undefined>>;
}

export interface ServerCommandInput {
    /** `unitune.server.command`: the full command, program first. */
    command?: unknown;
    /** `unitune.server.pythonPath`. */
    pythonPath?: unknown;
    /** The interpreter chosen in the Python extension, already resolved to an executable. */
    pythonFromExtension?: string;
    /** `process.platform`. */
    platform: string;
    variables?: Variables;
}

export interface ServerCommand {
    command: string;
    args: string[];
    /** The interpreter, when the command is `<python> -m unitune.server`. */
    python?: string;
    source: CommandSource;
    /** Settings that were ignored, and why. */
    warnings: string[];
}

/** The interpreter used when nothing else names one. */
export function defaultPython(platform: string): string {
    return platform === 'win32' ? 'python' : 'python3';
}

/** `${workspaceFolder}`, `${userHome}`, `${env:NAME}` and a leading `~` expanded. */
export function expandVariables(text: string, vars: Variables = {}): string {
    let out = text.replace(/\$\{(workspaceFolder|userHome|env:([A-Za-z_][A-Za-z0-9_]*))\}/g, (whole, name: string, envName?: string) => {
        if (envName !== undefined) {
            return vars.env?.[envName] ?? '';
        }
        const value = name === 'workspaceFolder' ? vars.workspaceFolder : vars.userHome;
        return value ?? whole;
    });
    if (vars.userHome && (out === '~' || out.startsWith('~/') || out.startsWith('~\\'))) {
        out = vars.userHome + out.slice(1);
    }
    return out;
}

function nonEmptyString(value: unknown): value is string {
    return typeof value === 'string' && value.trim() !== '';
}

/**
 * The server command, in order: `unitune.server.command`, `unitune.server.pythonPath`, the
 * Python extension's interpreter, then `python3` (`python` on Windows); the last three run
 * `<python> -m unitune.server`.
 */
export function resolveServerCommand(input: ServerCommandInput): ServerCommand {
    const warnings: string[] = [];
    const vars = input.variables ?? {};
    const command = input.command;
    if (Array.isArray(command) && command.length > 0) {
        if (command.every(nonEmptyString)) {
            const [program, ...args] = command.map((part) => expandVariables(part, vars));
            return { command: program, args, source: 'unitune.server.command', warnings };
        }
        warnings.push('unitune.server.command is ignored: it must be a list of non-empty strings, the program first.');
    } else if (command !== undefined && command !== null && !(Array.isArray(command) && command.length === 0)) {
        warnings.push('unitune.server.command is ignored: it must be a list of strings, e.g. ["/path/to/python", "-m", "unitune.server"].');
    }
    const withPython = (python: string, source: CommandSource): ServerCommand => ({
        command: python,
        args: ['-m', SERVER_MODULE],
        python,
        source,
        warnings,
    });
    if (nonEmptyString(input.pythonPath)) {
        return withPython(expandVariables(input.pythonPath.trim(), vars), 'unitune.server.pythonPath');
    }
    if (input.pythonPath !== undefined && input.pythonPath !== null && typeof input.pythonPath !== 'string') {
        warnings.push('unitune.server.pythonPath is ignored: it must be a path to a Python executable.');
    }
    if (nonEmptyString(input.pythonFromExtension)) {
        return withPython(input.pythonFromExtension, 'the Python extension');
    }
    return withPython(defaultPython(input.platform), 'the default');
}

/** A command as one would type it in a shell (for messages and the log). */
export function formatCommand(command: { command: string; args: readonly string[] }): string {
    return [command.command, ...command.args].map(quote).join(' ');
}

function quote(part: string): string {
    return /^[A-Za-z0-9_@%+=:,./\\-]+$/.test(part) ? part : `"${part.replace(/(["\\$`])/g, '\\$1')}"`;
}

/** The result of running `<python> -c "import unitune.server"` after a failed start. */
export interface ProbeResult {
    /** The spawn error's code (`ENOENT`: no such program, `EACCES`: not executable). */
    spawnErrorCode?: string;
    exitCode?: number | null;
    stderr?: string;
}

export interface StartFailure {
    /** The language client's error, as text. */
    error?: string;
    probe?: ProbeResult;
}

export type FailureKind = 'not-found' | 'not-executable' | 'not-installed' | 'broken-install' | 'server-failed';

function lastLine(text: string | undefined): string {
    const lines = (text ?? '').split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== '');
    return lines.length > 0 ? lines[lines.length - 1] : '';
}

/** What went wrong, from the probe when there is one, else from the client's error text. */
export function classifyStartFailure(failure: StartFailure): FailureKind {
    const probe = failure.probe;
    if (probe?.spawnErrorCode === 'ENOENT') {
        return 'not-found';
    }
    if (probe?.spawnErrorCode === 'EACCES') {
        return 'not-executable';
    }
    if (probe && probe.spawnErrorCode === undefined && probe.exitCode !== 0 && probe.exitCode !== undefined) {
        return /No module named ['"]?unitune/.test(probe.stderr ?? '') ? 'not-installed' : 'broken-install';
    }
    const error = failure.error ?? '';
    if (/\bENOENT\b/.test(error)) {
        return 'not-found';
    }
    if (/\bEACCES\b/.test(error)) {
        return 'not-executable';
    }
    return 'server-failed';
}

/** The user-facing message for a server that did not start: which command, why, what to do. */
export function describeStartFailure(command: ServerCommand, failure: StartFailure): string {
    const kind = classifyStartFailure(failure);
    const origin = `from ${command.source}`;
    if (command.python === undefined) {
        const shown = formatCommand(command);
        const what =
            kind === 'not-found' ? `\`${command.command}\` was not found`
            : kind === 'not-executable' ? `\`${command.command}\` is not executable`
            : 'it exited before the server started';
        return `unitune: the language server did not start with \`${shown}\` (${origin}): ${what}. ` +
            'Fix unitune.server.command, or clear it to run `<python> -m unitune.server` with the Python ' +
            'from unitune.server.pythonPath or the Python extension. The output channel "unitune" has the details.';
    }
    const python = command.python;
    const install = `\`${python} -m pip install unitune\``;
    const remedy = `install unitune there with ${install}, or set unitune.server.pythonPath to a Python that has it ` +
        '(or select another interpreter in the Python extension).';
    switch (kind) {
        case 'not-found':
            return `unitune: the language server did not start: Python \`${python}\` (${origin}) was not found. ` +
                'Set unitune.server.pythonPath to a Python with unitune installed (`pip install unitune`), ' +
                'or select an interpreter in the Python extension.';
        case 'not-executable':
            return `unitune: the language server did not start: \`${python}\` (${origin}) is not executable. ` +
                'Set unitune.server.pythonPath to a Python executable with unitune installed (`pip install unitune`).';
        case 'not-installed':
            return `unitune: the language server did not start: Python \`${python}\` (${origin}) does not have unitune installed: ${remedy}`;
        case 'broken-install': {
            const detail = lastLine(failure.probe?.stderr);
            return `unitune: the language server did not start: \`${python} -m ${SERVER_MODULE}\` (${origin}) fails to import` +
                (detail ? ` (${detail})` : '') + `. Reinstall it with ${install}, or set unitune.server.pythonPath ` +
                'to a Python that has a working unitune. The output channel "unitune" has the details.';
        }
        default:
            return `unitune: the language server \`${python} -m ${SERVER_MODULE}\` (${origin}) exited before it started. ` +
                `The output channel "unitune" has its error output; if unitune is missing or outdated there, run ${install}, ` +
                'or set unitune.server.pythonPath.';
    }
}
