/**
 * The raw input shapes, derived from the settings table (settings.ts): command-line
 * flags and config files (YAML or JSON).
 *
 * The config file mirrors kumactl's transparent-proxy config file (same key names,
 * same nesting) so a kumactl file works here, plus tpctl's extensions. zod checks the
 * structure (known keys, value kinds); the content of each value (port ranges, CIDRs,
 * uid rules …) is checked by the setting's parser so every message can name the value
 * and say what is allowed.
 */
import { z } from 'zod';
import { flagAttr, IPTABLES_EXECUTABLE_NAMES, SETTING_IDS, SETTINGS, settingOf, type FileKind, type SettingId } from './settings.js';

const kind = (expected: string): z.RawCreateParams => ({ errorMap: () => ({ message: `expected ${expected}` }) });

const LEAVES: Record<FileKind, z.ZodTypeAny> = {
  bool: z.boolean(kind('true or false')),
  scalar: z.union([z.string(), z.number()], kind('a number or a string')),
  string: z.string(kind('a string')),
  list: z.union([z.string(), z.number(), z.array(z.union([z.string(), z.number()]))], kind('a list, or a comma-separated string')),
  stringList: z.union([z.string(), z.array(z.string())], kind('a list of strings')),
  executables: z.union(
    [z.string(), z.object(Object.fromEntries(IPTABLES_EXECUTABLE_NAMES.map((n) => [n, z.string(kind('a path'))]))).partial().strict()],
    kind('a mapping of iptables executable names to paths, or name:path[,name:path…]'),
  ),
};

interface Tree {
  [key: string]: Tree | z.ZodTypeAny;
}

function objectOf(tree: Tree): z.ZodTypeAny {
  const shape = Object.fromEntries(Object.entries(tree).map(([k, t]) => [k, t instanceof z.ZodType ? t : objectOf(t)]));
  return z.object(shape).partial().strict();
}

function buildFileSchema(): z.ZodTypeAny {
  const root: Tree = {};
  for (const id of SETTING_IDS) {
    const s = settingOf(id);
    if (!s.key || !s.fileKind) continue;
    const parts = s.key.split('.');
    let node = root;
    for (const p of parts.slice(0, -1)) node = (node[p] ??= {}) as Tree;
    node[parts[parts.length - 1] ?? ''] = LEAVES[s.fileKind];
  }
  return objectOf(root);
}

/** The config file: every setting with a key, nested as the key path says. */
export const configFileSchema = buildFileSchema();

type Scalar = string | number;
type List = Scalar | Scalar[];

/** A config file's content as tpctl writes it (to-file.ts): kumactl's keys; the schema above is what it reads. */
export interface ConfigFile {
  kumaDPUser?: Scalar;
  ipFamilyMode?: string;
  redirect?: {
    inbound?: { enabled?: boolean; port?: Scalar; excludePorts?: List; excludePortsForIPs?: List };
    outbound?: { enabled?: boolean; port?: Scalar; excludePorts?: List; excludePortsForIPs?: List; excludePortsForUIDs?: string | string[] };
    dns?: { enabled?: boolean; captureAll?: boolean; port?: Scalar; skipConntrackZoneSplit?: boolean; resolvConfigPath?: string };
    vnet?: { networks?: string | string[] };
  };
  ebpf?: { enabled?: boolean; instanceIP?: List; bpffsPath?: string; cgroupPath?: string; tcAttachIface?: string; programsSourcePath?: string };
  log?: { enabled?: boolean };
  retry?: { maxRetries?: Scalar; sleepBetweenRetries?: Scalar };
  wait?: Scalar;
  waitInterval?: Scalar;
  dropInvalidPackets?: boolean;
  storeFirewalld?: boolean;
  verbose?: boolean;
  dryRun?: boolean;
  iptablesBackend?: string;
  engine?: string;
}

/** One config file as read: where it came from (for messages) and its parsed content. */
export interface ConfigFileInput {
  /** The path as given, or `<stdin>`. */
  source: string;
  data: unknown;
}

const flagValue = z.union([z.string(), z.number(), z.boolean()]);
const flagList = z.union([z.string(), z.array(z.string())]);

/** Settings whose flags are not part of RawFlags: --config-file joins --config in the CLI, --persist is the command's. */
const CLI_ONLY: SettingId[] = ['configFile', 'persist'];

/** Flag attribute → setting id, for every flag of the table. */
export const FLAG_SETTINGS: ReadonlyMap<string, SettingId> = new Map(
  SETTING_IDS.filter((id) => !CLI_ONLY.includes(id))
    .map((id) => [flagAttr(settingOf(id)), id] as const)
    .filter((e): e is [string, SettingId] => e[0] !== undefined),
);

/**
 * Command-line flags (and the library's options object), named as commander names
 * them: `--redirect-inbound-port` → `redirectInboundPort`. Values stay raw (strings,
 * or true for a bare boolean flag) until resolveConfig parses them.
 */
export const rawFlagsSchema = z
  .object(Object.fromEntries([...FLAG_SETTINGS].map(([attr, id]) => [attr, settingOf(id).repeatable ? flagList : flagValue])))
  .partial()
  .strict();

type FlagAttrOf<Id extends SettingId> = (typeof SETTINGS)[Id] extends { flag: infer F }
  ? F extends `--${infer Name}` ? CamelFlag<Name extends `${infer N} ${string}` ? N : Name> : never
  : never;
type CamelFlag<S extends string> = S extends `${infer A}-${infer B}` ? `${A}${Capitalize<CamelFlag<B>>}` : S;
type FlagIds = Exclude<SettingId, 'configFile' | 'persist'>;

export type RawFlags = { [Id in FlagIds as FlagAttrOf<Id>]?: (typeof SETTINGS)[Id] extends { repeatable: true } ? string | string[] : string | number | boolean };
export type RawFlagName = keyof RawFlags;

/** Flags `tpctl uninstall transparent-proxy` takes. */
export const UNINSTALL_FLAGS: readonly string[] = [...FLAG_SETTINGS].filter(([, id]) => settingOf(id).uninstall !== undefined).map(([attr]) => attr);
export type RawUninstallFlags = Pick<RawFlags, 'config' | 'dryRun' | 'verbose' | 'ebpfEnabled' | 'ebpfBpffsPath' | 'iptablesBackend' | 'engine'>;

/** `redirectInboundPort` → `--redirect-inbound-port`. */
export function flagName(attr: string): string {
  return `--${attr.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}
