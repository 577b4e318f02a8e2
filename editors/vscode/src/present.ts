// What the server's answers look like to the user: adapter picks, the status summary, results.
// Pure: no `vscode` import. The server's answers are checked, never trusted to have a shape.

export interface AdapterInfo {
    name: string;
    method?: string;
    store?: string;
    base_model?: string;
    ok?: boolean;
    problems?: string[];
    [more: string]: unknown;
}

export interface AdapterPick {
    label: string;
    description?: string;
    detail?: string;
    /** The adapter to select; null: the bare model. */
    name: string | null;
}

export const NO_ADAPTER_LABEL = '(none: bare model)';

function isRecord(value: unknown): value is Record<string, unknown> {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(value: unknown): string | undefined {
    return typeof value === 'string' && value !== '' ? value : undefined;
}

function problemsOf(value: unknown): string[] {
    if (typeof value === 'string') {
        return value ? [value] : [];
    }
    return Array.isArray(value) ? value.filter((p): p is string => typeof p === 'string' && p !== '') : [];
}

/** The adapters in a `unitune.listAdapters` answer: a list, or an object holding `adapters`. */
export function parseAdapters(result: unknown): AdapterInfo[] {
    const list = Array.isArray(result) ? result : isRecord(result) && Array.isArray(result.adapters) ? result.adapters : [];
    const adapters: AdapterInfo[] = [];
    for (const entry of list) {
        if (!isRecord(entry) || !text(entry.name)) {
            continue;
        }
        adapters.push({
            ...entry,
            name: entry.name as string,
            method: text(entry.method),
            store: text(entry.store),
            base_model: text(entry.base_model),
            ok: entry.ok !== false,
            problems: problemsOf(entry.problems),
        });
    }
    return adapters;
}

/** QuickPick items: the bare model first, then each adapter; the current choice is marked. */
export function adapterPicks(adapters: readonly AdapterInfo[], current?: string | null): AdapterPick[] {
    const mark = (selected: boolean) => (selected ? '$(check) ' : '');
    const picks: AdapterPick[] = [
        {
            label: mark(current === null) + NO_ADAPTER_LABEL,
            description: current === null ? 'current' : undefined,
            detail: 'Generate with the base model alone.',
            name: null,
        },
    ];
    for (const adapter of adapters) {
        const selected = current === adapter.name;
        const warn = adapter.ok === false ? '$(warning) ' : '';
        const description = [adapter.method, adapter.base_model && `on ${adapter.base_model}`, selected ? 'current' : undefined]
            .filter(Boolean)
            .join(' · ');
        const problems = adapter.problems ?? [];
        const detail = problems.length > 0 ? problems.join('; ') : adapter.store ? `store: ${adapter.store}` : undefined;
        picks.push({ label: mark(selected) + warn + adapter.name, description: description || undefined, detail, name: adapter.name });
    }
    return picks;
}

function normalizeUri(uri: string): string {
    let decoded = uri;
    try {
        decoded = decodeURIComponent(uri);
    } catch {
        // keep it as it is
    }
    return decoded.replace(/\/+$/, '').replace(/^file:\/\/\/([A-Za-z]):/, (_m, drive: string) => `file:///${drive.toLowerCase()}:`);
}

export function sameUri(a: string, b: string): boolean {
    return normalizeUri(a) === normalizeUri(b);
}

/**
 * The adapter a folder uses according to a `unitune.status` answer: a name, null for none,
 * undefined when the status does not say.
 */
export function currentAdapter(status: unknown, folderUri?: string): string | null | undefined {
    if (!isRecord(status) || !Array.isArray(status.folders)) {
        return undefined;
    }
    const folders = status.folders.filter(isRecord);
    const folder = folderUri === undefined
        ? (folders.length === 1 ? folders[0] : undefined)
        : folders.find((f) => typeof f.uri === 'string' && sameUri(f.uri, folderUri));
    if (!folder || !('adapter' in folder)) {
        return undefined;
    }
    const adapter = folder.adapter;
    if (adapter === null || adapter === '') {
        return null;
    }
    if (typeof adapter === 'string') {
        return adapter;
    }
    return isRecord(adapter) && typeof adapter.name === 'string' ? adapter.name : undefined;
}

function show(value: unknown): string {
    if (value === null || value === undefined || value === '') {
        return 'none';
    }
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
        return String(value);
    }
    if (isRecord(value) && typeof value.name === 'string') {
        return value.name;
    }
    return JSON.stringify(value);
}

/** One line for a notification: server version, runtime, folders. */
export function summarizeStatus(status: unknown): string {
    if (!isRecord(status)) {
        return `unitune: the server answered ${JSON.stringify(status)}`;
    }
    const parts: string[] = [];
    parts.push(`unitune ${typeof status.version === 'string' ? status.version : '(version unknown)'}`);
    const runtime = status.runtime;
    if (isRecord(runtime)) {
        const state = show(runtime.state);
        const details: string[] = [];
        if (runtime.model !== undefined && runtime.model !== null) {
            details.push(show(runtime.model));
        }
        if (runtime.device !== undefined && runtime.device !== null) {
            details.push(`on ${show(runtime.device)}`);
        }
        if (runtime.quantization !== undefined && runtime.quantization !== null) {
            details.push(`quantization ${show(runtime.quantization)}`);
        }
        if ('active_adapter' in runtime) {
            details.push(`adapter ${show(runtime.active_adapter)}`);
        }
        parts.push(`runtime ${state}${details.length ? ': ' + details.join(', ') : ''}`);
    }
    if (Array.isArray(status.folders)) {
        const folders = status.folders.filter(isRecord);
        if (folders.length === 1) {
            parts.push(`folder: model ${show(folders[0].model)}, adapter ${show(folders[0].adapter)}`);
        } else {
            parts.push(`${folders.length} folders`);
        }
    }
    return parts.join(' · ');
}

/** The status as indented JSON, for the output channel. */
export function formatStatus(status: unknown): string {
    return JSON.stringify(status, null, 2) ?? String(status);
}

/**
 * How a command went, from its answer. The server answers its commands with `{ok, error?, ...}`
 * and tells the user itself (window/showMessage); an answer without `ok` is a plain result.
 */
export interface CommandOutcome {
    ok: boolean;
    error?: string;
    /** The server has already told the user (its answer carries `ok`). */
    reported: boolean;
}

export function commandOutcome(result: unknown): CommandOutcome {
    if (isRecord(result) && typeof result.ok === 'boolean') {
        return { ok: result.ok, error: text(result.error), reported: true };
    }
    return { ok: true, reported: false };
}

/** A message for a command's answer: its `message` when it has one, else the fallback. */
export function resultMessage(result: unknown, fallback: string): string {
    if (typeof result === 'string' && result !== '') {
        return result;
    }
    if (isRecord(result) && typeof result.message === 'string' && result.message !== '') {
        return result.message;
    }
    return fallback;
}
