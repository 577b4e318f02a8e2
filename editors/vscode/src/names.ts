// Adapter names and training methods. Pure: no `vscode` import.

/** Adapter names as unitune's registry allows them (`NAME_PATTERN` in adapters/constants.py). */
export const ADAPTER_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export const MAX_NAME_LENGTH = 64;

/** Why `name` is not a valid adapter name, or undefined when it is (an InputBox validator). */
export function validateAdapterName(name: string): string | undefined {
    if (name.length === 0) {
        return 'Enter a name: lower-case letters, digits, ".", "_" or "-".';
    }
    if (name.length > MAX_NAME_LENGTH) {
        return `At most ${MAX_NAME_LENGTH} characters (this one has ${name.length}).`;
    }
    if (!/^[a-z0-9]/.test(name)) {
        return 'Start with a lower-case letter or a digit.';
    }
    const bad = [...name].find((c) => !/[a-z0-9._-]/.test(c));
    if (bad !== undefined) {
        return `"${bad}" is not allowed: use lower-case letters, digits, ".", "_" or "-".`;
    }
    return ADAPTER_NAME_PATTERN.test(name) ? undefined : 'Not a valid adapter name.';
}

/** A valid adapter name made from any text (a folder name), or '' when nothing usable is left. */
export function sanitizeName(text: string): string {
    const name = text
        .normalize('NFKD')
        .replace(/[\u0300-\u036f]/g, '')
        .toLowerCase()
        .replace(/[^a-z0-9._-]+/g, '-')
        .replace(/^[^a-z0-9]+/, '')
        .slice(0, MAX_NAME_LENGTH)
        .replace(/[-._]+$/, '');
    return ADAPTER_NAME_PATTERN.test(name) ? name : '';
}

/** A suggested name for a new adapter of `folderName` trained with `method`: `bank-lora`. */
export function suggestAdapterName(folderName: string, method: string): string {
    const suffix = sanitizeName(method) || 'adapter';
    const base = sanitizeName(folderName).slice(0, MAX_NAME_LENGTH - suffix.length - 1).replace(/[-._]+$/, '');
    return base ? `${base}-${suffix}` : suffix;
}

export interface TrainingMethod {
    id: 'lora' | 'ia3' | 'prompt-tuning' | 'full';
    label: string;
    description: string;
}

/** The methods `unitune train --method` takes, the default (LoRA) first. */
export const TRAINING_METHODS: readonly TrainingMethod[] = [
    { id: 'lora', label: 'lora', description: 'LoRA (default): closest to full fine-tuning, small adapter' },
    { id: 'ia3', label: 'ia3', description: '(IA)³: learned scaling vectors, even fewer parameters than LoRA' },
    { id: 'prompt-tuning', label: 'prompt-tuning', description: 'Prompt tuning: 20 virtual tokens, the cheapest to train' },
    { id: 'full', label: 'full', description: 'Full fine-tuning: a whole model copy, the most memory and disk' },
];

export const DEFAULT_TRAINING_METHOD = 'lora';
