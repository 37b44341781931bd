/**
 * The merge: every source's values for the settings of the table, the winner per
 * setting, and where it came from.
 *
 * Precedence, later wins: defaults < config files (in the order given) < pod
 * annotations (--pod-annotations) < environment variables < flags. Files, environment
 * and flags are Kuma's order. Kuma's injector turned a pod's annotations into the init
 * container's arguments; here the annotations file sits just above the config files
 * (a per-pod value beats a shared file) and below what the operator sets on the
 * container itself (its environment and arguments).
 *
 * Every value keeps a label naming its source (`--redirect-inbound-port`,
 * `tp.yaml: redirect.inbound.port`, `KUMA_TRANSPARENT_PROXY_REDIRECT_INBOUND_PORT`,
 * `annotations:3: kuma.io/builtin-dns-port`) so every error names exactly what to fix.
 */
import type { ZodError, ZodIssue } from 'zod';
import { ConfigError } from '../errors.js';
import type { AnnotationsInput } from './annotations.js';
import { configFileSchema, flagName, FLAG_SETTINGS, rawFlagsSchema, type ConfigFileInput, type RawFlags } from './schema.js';
import { IPTABLES_EXECUTABLE_NAMES, longFlag, SETTING_IDS, SETTINGS, settingOf, type Setting, type SettingId } from './settings.js';
import { quoteValue, ValueError } from '../value-error.js';

type Parsed<Id extends SettingId> = ReturnType<(typeof SETTINGS)[Id]['parse']>;
/** A setting's type: what its parser returns, or undefined where it has no default. */
type ValueOf<Id extends SettingId> = Parsed<Id> | (undefined extends (typeof SETTINGS)[Id]['fallback'] ? undefined : never);

interface Sourced {
  value: unknown;
  label: string;
  fromFlag: boolean;
}

export interface LayerInput {
  flags?: RawFlags;
  files?: ConfigFileInput[];
  /** A pod's annotations (--pod-annotations): above files, below environment and flags. */
  annotations?: AnnotationsInput;
  /** Environment variables (the table's `env`): above files and annotations, below flags. */
  env?: Record<string, string | undefined>;
}

/** The winning value of every setting that some source set. */
export class Layers {
  private readonly values = new Map<SettingId, Sourced>();

  set(id: SettingId, s: Sourced): void {
    this.values.set(id, s);
  }

  has(id: SettingId): boolean {
    return this.values.has(id);
  }

  /** Where the value came from; the setting's flag (or key) when nothing set it. */
  label(id: SettingId): string {
    const s = settingOf(id);
    return this.values.get(id)?.label ?? longFlag(s) ?? s.key ?? id;
  }

  fromFlag(id: SettingId): boolean {
    return this.values.get(id)?.fromFlag ?? false;
  }

  raw(id: SettingId): unknown {
    return this.values.get(id)?.value;
  }

  /** The parsed value, or the table's fallback; a bad value becomes a ConfigError naming its source. */
  value<Id extends SettingId>(id: Id): ValueOf<Id> {
    const s = settingOf(id);
    const v = this.values.get(id);
    // A copy of a list fallback: the table's own stays untouched.
    if (!v) return (Array.isArray(s.fallback) ? [...(s.fallback as unknown[])] : s.fallback) as ValueOf<Id>;
    return parseAt(v.label, () => s.parse(v.value)) as ValueOf<Id>;
  }

  /** The parsed value when some source set it. */
  given<Id extends SettingId>(id: Id): Parsed<Id> | undefined {
    return this.has(id) ? (this.value(id) as Parsed<Id>) : undefined;
  }
}

export function parseAt<T>(label: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof ValueError) throw new ConfigError(`${label}: ${e.problem}`, e.allowed ? { hint: e.allowed } : {});
    throw e;
  }
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

export function describeReceived(x: unknown): string {
  if (x === null || x === undefined) return 'nothing';
  if (Array.isArray(x)) return 'a list';
  if (typeof x === 'object') return 'a mapping';
  return `${typeof x} ${typeof x === 'string' ? quoteValue(x) : String(x)}`;
}

function valueAtPath(data: unknown, path: (string | number)[]): unknown {
  let cur: unknown = data;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[p];
  }
  return cur;
}

function formatZodIssue(source: string, data: unknown, issue: ZodIssue): ConfigError {
  const at = issue.path.join('.');
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    const full = at ? `${at}.${key}` : key;
    return new ConfigError(`${source}: ${full}: unknown key`, { hint: `allowed here: ${allowedKeysAt(issue.path).join(', ')}` });
  }
  if (issue.code === 'invalid_union') {
    // A leaf with several accepted forms: the nested issue (e.g. an unknown executable name) says more.
    const inner = issue.unionErrors.flatMap((e) => e.issues).find((i) => i.code === 'unrecognized_keys');
    if (inner) return formatZodIssue(source, data, inner);
  }
  const got = describeReceived(valueAtPath(data, issue.path));
  // Sections have no custom zod message; leaves carry theirs (`expected true or false`).
  const hint = issue.code === 'invalid_type' && issue.expected === 'object' ? 'expected a mapping' : issue.message;
  return new ConfigError(`${source}: ${at || '(top level)'}: ${got} is not allowed`, { hint });
}

/** Keys the file accepts in the mapping at `path` (for "unknown key" hints), in table order. */
function allowedKeysAt(path: (string | number)[]): string[] {
  const prefix = path.map(String);
  if (prefix.join('.') === 'iptablesExecutables') return [...IPTABLES_EXECUTABLE_NAMES];
  const keys: string[] = [];
  for (const id of SETTING_IDS) {
    const parts = settingOf(id).key?.split('.');
    if (!parts || parts.length <= prefix.length || prefix.some((p, i) => parts[i] !== p)) continue;
    const next = parts[prefix.length] ?? '';
    if (!keys.includes(next)) keys.push(next);
  }
  return keys;
}

const FILE_KEYS: ReadonlyMap<string, SettingId> = new Map(
  SETTING_IDS.filter((id) => settingOf(id).key !== undefined).map((id) => [settingOf(id).key ?? '', id]),
);

/** Validates a file's structure and returns its set values by setting. */
function flattenFile(file: ConfigFileInput): Map<SettingId, { key: string; value: unknown }> {
  const data = file.data ?? {};
  if (!isPlainObject(data)) {
    throw new ConfigError(`${file.source}: ${describeReceived(data)} at the top level`, {
      hint: 'expected a mapping of settings, e.g. redirect: {inbound: {port: 15006}}',
    });
  }
  const parsed = configFileSchema.safeParse(data);
  if (!parsed.success) {
    const first = (parsed.error as ZodError).issues[0];
    if (first) throw formatZodIssue(file.source, data, first);
  }
  const out = new Map<SettingId, { key: string; value: unknown }>();
  const walk = (obj: Record<string, unknown>, prefix: string): void => {
    for (const [k, val] of Object.entries(obj)) {
      const key = prefix ? `${prefix}.${k}` : k;
      const id = FILE_KEYS.get(key);
      if (id !== undefined) {
        if (val !== undefined && val !== null) out.set(id, { key, value: val });
      } else if (isPlainObject(val)) walk(val, key);
    }
  };
  walk(data, '');
  return out;
}

function validateFlags(flags: RawFlags | undefined, allowed?: readonly string[]): RawFlags {
  const f = flags ?? {};
  for (const attr of Object.keys(f)) {
    if (allowed && !allowed.includes(attr)) {
      throw new ConfigError(`${flagName(attr)}: not an option of this command`, { hint: `allowed: ${allowed.map(flagName).join(', ')}` });
    }
  }
  const parsed = rawFlagsSchema.safeParse(f);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    if (issue?.code === 'unrecognized_keys') {
      throw new ConfigError(`${flagName(issue.keys[0] ?? '')}: unknown option`, { hint: 'see tpctl install transparent-proxy --help' });
    }
    const attr = String(issue?.path[0] ?? '');
    throw new ConfigError(`${flagName(attr)}: ${describeReceived((f as Record<string, unknown>)[attr])} is not allowed`, {
      hint: 'expected a string, number or boolean',
    });
  }
  return parsed.data as RawFlags;
}

function annotationLayer(layers: Layers, input: AnnotationsInput): void {
  const byName = new Map(input.entries.map((e) => [e.name, e]));
  for (const id of SETTING_IDS) {
    const s: Setting = settingOf(id);
    const found: Sourced[] = [];
    for (const a of s.annotations ?? []) {
      const entry = byName.get(a.name);
      if (!entry) continue;
      const label = `${input.source}:${entry.line}: ${a.name}`;
      const value = parseAt(label, () => (a.toValue ? a.toValue(entry.value) : entry.value));
      if (value !== undefined) found.push({ value, label, fromFlag: false });
    }
    const [first] = found;
    if (!first) continue;
    // Several annotations for one list setting (excluded inbound ports + the probe port) add up.
    layers.set(id, found.length === 1 ? first : { ...first, value: found.flatMap((f) => f.value as unknown) });
  }
}

function envLayer(layers: Layers, env: Record<string, string | undefined>): void {
  for (const id of SETTING_IDS) {
    const s: Setting = settingOf(id);
    const name = s.env?.find((n) => env[n] !== undefined && env[n] !== '');
    if (name === undefined) continue;
    const text = env[name] ?? '';
    layers.set(id, { value: s.envSplit ? text.split(s.envSplit) : text, label: name, fromFlag: false });
  }
}

function flagLayer(layers: Layers, flags: RawFlags): void {
  const given = flags as Record<string, unknown>;
  const extra = new Map<SettingId, unknown[]>();
  for (const [attr, id] of FLAG_SETTINGS) {
    const value = given[attr];
    if (value === undefined) continue;
    const s: Setting = settingOf(id);
    if (s.into) {
      // A compatibility spelling: its values join the setting it stands for.
      const target = s.into as SettingId;
      const parsed = parseAt(flagName(attr), () => s.parse(value)) as unknown[];
      extra.set(target, [...(extra.get(target) ?? []), ...parsed]);
    }
    layers.set(id, { value, label: flagName(attr), fromFlag: true });
  }
  for (const [id, values] of extra) {
    const own = layers.fromFlag(id) ? layers.raw(id) : undefined;
    const label = own !== undefined ? layers.label(id) : (longFlag(settingOf(id)) ?? id);
    layers.set(id, { value: [...(own === undefined ? [] : Array.isArray(own) ? own : [own]), ...values], label, fromFlag: true });
  }
}

/** All sources, merged. `allowedFlags` limits the flags (uninstall takes a few). */
export function buildLayers(input: LayerInput, allowedFlags?: readonly string[]): { layers: Layers; flags: RawFlags } {
  const flags = validateFlags(input.flags, allowedFlags);
  const layers = new Layers();
  for (const file of input.files ?? []) {
    for (const [id, { key, value }] of flattenFile(file)) layers.set(id, { value, label: `${file.source}: ${key}`, fromFlag: false });
  }
  if (input.annotations) annotationLayer(layers, input.annotations);
  if (input.env) envLayer(layers, input.env);
  flagLayer(layers, flags);
  return { layers, flags };
}
