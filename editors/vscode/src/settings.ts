// The `unitune` settings section and what of it reaches the server.
//
// Pure: no `vscode` import, so the unit tests run without an editor.
//
// Only values the user actually set (user, workspace or folder settings) are sent. VS Code's
// `get()` would also return the defaults declared in package.json, and those would then outrank
// the project's own file (`[tool.unitune]` in pyproject.toml, `unitune.toml`), since an editor
// setting has the highest precedence. The server applies the same defaults itself.

export const SECTION = 'unitune';

/** unitune's settings keys (unitune/settings.py), spelled exactly as there. */
export const SETTING_KEYS = [
    'model',
    'adapter',
    'quantization',
    'device',
    'engine',
    'context',
    'project_context',
    'max_new_tokens',
    'candidates',
    'validate',
    'repair',
    'time_budget',
    'python',
    'test_dir',
    'framework',
    'trust_remote_code',
    'server_url',
] as const;

export type SettingKey = (typeof SETTING_KEYS)[number];

/** Keys of the section that belong to the client, never sent as settings. */
export const CLIENT_KEYS = ['server', 'trace'] as const;

/** unitune's defaults (unitune/settings.py; null: none, or detected by the server). */
export const DEFAULTS: Readonly<Record<SettingKey, string | number | boolean | null>> = {
    model: 'qwen2.5-coder-0.5b-instruct',
    adapter: null,
    quantization: 'auto',
    device: 'auto',
    engine: 'auto',
    context: 'fm+fc+c+m+f',
    project_context: true,
    max_new_tokens: 256,
    candidates: 1,
    validate: 'run',
    repair: 'observe',
    time_budget: 300,
    python: null,
    test_dir: null,
    framework: null,
    trust_remote_code: false,
    server_url: null,
};

/** The allowed values of the enumerated keys. */
export const ALLOWED: Readonly<Partial<Record<SettingKey, readonly (string | null)[]>>> = {
    quantization: ['auto', '4bit', '8bit', 'none'],
    device: ['auto', 'cuda', 'cpu', 'mps'],
    engine: ['auto', 'torch', 'llama.cpp'],
    context: ['fm', 'fm+fc', 'fm+fc+c', 'fm+fc+c+m', 'fm+fc+c+m+f'],
    validate: ['none', 'syntax', 'run'],
    repair: ['observe', 'drop', 'none'],
    framework: ['pytest', 'unittest', 'junit5', 'junit4', null],
};

/** Integer ranges, inclusive. */
export const RANGES: Readonly<Partial<Record<SettingKey, readonly [number, number]>>> = {
    max_new_tokens: [1, 8192],
    candidates: [1, 64],
    time_budget: [5, 3600],
};

/** The shape of `WorkspaceConfiguration.inspect()` that matters here. */
export interface Inspected {
    defaultValue?: unknown;
    globalValue?: unknown;
    workspaceValue?: unknown;
    workspaceFolderValue?: unknown;
}

export type Inspector = (key: string) => Inspected | undefined;

/** A value counts as set when it is neither missing, null nor an empty string. */
export function isSet(value: unknown): boolean {
    return value !== undefined && value !== null && value !== '';
}

/** The value the user set for one key, the most specific scope first; undefined when none. */
export function explicitValue(inspected: Inspected | undefined): unknown {
    if (!inspected) {
        return undefined;
    }
    for (const value of [inspected.workspaceFolderValue, inspected.workspaceValue, inspected.globalValue]) {
        if (isSet(value)) {
            return value;
        }
    }
    return undefined;
}

/** The settings the user set, as an object of DESIGN keys (what the server receives). */
export function explicitSettings(inspect: Inspector): Record<string, unknown> {
    const settings: Record<string, unknown> = {};
    for (const key of SETTING_KEYS) {
        const value = explicitValue(inspect(key));
        if (value !== undefined) {
            settings[key] = value;
        }
    }
    return settings;
}

/**
 * A whole `unitune` section (as `getConfiguration('unitune')` gives it) reduced to what the server
 * takes: DESIGN keys only, no client keys, no unset values.
 */
export function serverSection(section: Readonly<Record<string, unknown>>): Record<string, unknown> {
    const settings: Record<string, unknown> = {};
    for (const key of SETTING_KEYS) {
        if (isSet(section[key])) {
            settings[key] = section[key];
        }
    }
    return settings;
}

/**
 * The answer to one `workspace/configuration` item that names our section: the whole section
 * (`unitune`) or one key (`unitune.model`, null when not set). `ours` is false for any other
 * section, which the caller answers the ordinary way.
 */
export function configurationAnswer(section: string | undefined, inspect: Inspector): { ours: boolean; value: unknown } {
    if (section === SECTION) {
        return { ours: true, value: explicitSettings(inspect) };
    }
    if (section !== undefined && section.startsWith(SECTION + '.')) {
        const key = section.slice(SECTION.length + 1);
        if ((SETTING_KEYS as readonly string[]).includes(key)) {
            const value = explicitValue(inspect(key));
            return { ours: true, value: value === undefined ? null : value };
        }
    }
    return { ours: false, value: undefined };
}

/** Settings whose change needs a new server process. */
export const RESTART_KEYS = ['server.pythonPath', 'server.command'] as const;
