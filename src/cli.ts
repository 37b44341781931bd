#!/usr/bin/env node
/**
 * The command line: argv → command. The only module that prints errors and decides
 * exit codes. Usage errors (unknown flag, unknown command, missing argument) exit 2
 * with one line; a TpError exits with its own code and one line; anything else exits
 * 1 with its message, and a stack trace only with --verbose or TPCTL_DEBUG=1.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import type { CommandResult } from './commands/install.js';
import { DEFAULTS } from './config/defaults.js';
import { longFlag, SETTING_IDS, settingOf, type Setting } from './config/settings.js';
import type { RawFlags, RawUninstallFlags } from './config/schema.js';
import type { Logger } from './config/types.js';
import { isTpError } from './errors.js';
import { UNIT_NAME } from './persist/boot.js';
import { STATUS_EXIT, VERIFY_EXIT } from './commands/exit-codes.js';
import { Steps, stepHooksFromEnv } from './steps.js';

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: NodeJS.ProcessEnv;
}

const processIo: CliIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  env: process.env,
};

/** A usage mistake found by tpctl itself (not by commander): exit 2 like commander's. */
class UsageError extends Error {}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

const BOOL_NOTE = '\n[bool] flags: --flag turns it on, --flag=false off.';

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/** A commander option from the settings table: its flag, help (or the uninstall help), repeatable and hidden. */
function tableOption(s: Setting, help: string): Option {
  const o = new Option(s.bool ? `${s.flag} [bool]` : (s.flag ?? ''), help);
  if (s.repeatable) o.argParser(collect);
  if (s.hidden) o.hideHelp();
  return o;
}

function addInstallOptions(cmd: Command): Command {
  for (const id of SETTING_IDS) {
    const s = settingOf(id);
    if (s.flag) cmd.addOption(tableOption(s, s.help));
  }
  const hidden = SETTING_IDS.map(settingOf).filter((s) => s.flag && s.hidden).map((s) => longFlag(s));
  cmd.addHelpText('after', `${BOOL_NOTE}\nAlso accepted (kumactl's older spellings; README: Flags): ${hidden.join(', ')}.`);
  return cmd;
}

function addUninstallOptions(cmd: Command): Command {
  for (const id of SETTING_IDS) {
    const s = settingOf(id);
    if (s.flag && s.uninstall) cmd.addOption(tableOption(s, s.uninstall));
  }
  cmd.addOption(new Option('--keep-persisted', `keep what install --persist wrote (${UNIT_NAME}'s own stop command)`));
  cmd.addHelpText('after', BOOL_NOTE);
  return cmd;
}

/**
 * Commander's options object without the keys of flags that were not given;
 * kumactl's --config-file joins --config (its files after --config's).
 */
function givenFlags(cmd: Command): Record<string, string | boolean | string[]> {
  const { configFile, ...rest } = cmd.opts() as Record<string, unknown>;
  const flags = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) as Record<string, string | boolean | string[]>;
  if (Array.isArray(configFile)) flags['config'] = [...((flags['config'] as string[] | undefined) ?? []), ...(configFile as string[])];
  return flags;
}

interface Verb {
  addOptions(cmd: Command): Command;
  description: string;
  run(flags: Record<string, unknown>, logger: Logger, env: CliIo['env'], steps: Steps): Promise<CommandResult>;
  /** The summary line after a change, and after a run that found nothing to change. */
  done: string;
  noop: string;
}

const VERBS: Record<'install' | 'uninstall', Verb> = {
  install: {
    addOptions: addInstallOptions,
    description: "redirect the host's TCP traffic (and optionally DNS) through the sidecar proxy",
    // Commands (and through them the engines) load only when one runs: --help and
    // --version stay fast, and a dry run never loads libbpf or koffi.
    run: async ({ persist, ...flags }, logger, env, steps) =>
      (await import('./commands/install.js')).install(flags as RawFlags, { logger, env, persist: persist === true, steps }),
    done: 'transparent proxy installed',
    noop: 'transparent proxy already installed with these settings; nothing changed',
  },
  uninstall: {
    addOptions: addUninstallOptions,
    description: 'remove everything install added',
    run: async ({ keepPersisted, ...flags }, logger, env, steps) =>
      (await import('./commands/uninstall.js')).uninstall(flags as RawUninstallFlags, { logger, env, keepPersisted: keepPersisted === true, steps }),
    done: 'transparent proxy removed',
    noop: 'nothing to remove: no transparent proxy installed',
  },
};

/** Commands whose outcome is an exit code rather than an error (status, verify). */
interface ExitHolder {
  code: number;
}

/**
 * `VERB transparent-proxy` for the read-only commands: the group (which only explains a
 * missing or wrong target) and the subcommand with the options every engine lookup takes.
 */
function targetCommand(program: Command, verb: string, groupDescription: string, description: string): Command {
  return program
    .command(verb)
    .description(groupDescription)
    .argument('[what]')
    .action((what?: string) => {
      throw new UsageError(what === undefined ? `${verb}: missing what (expected: transparent-proxy)` : `${verb}: unknown target '${what}' (expected: transparent-proxy)`);
    })
    .command('transparent-proxy')
    .allowExcessArguments(false)
    .description(description)
    .addOption(new Option('--ebpf-bpffs-path <dir>', `bpffs directory of an eBPF install (default: ${DEFAULTS.bpffsPath})`))
    .addOption(new Option('--iptables-backend <backend>', 'auto, nft or legacy (default: auto)'))
    .addOption(new Option('--verbose [bool]', 'stack traces on unexpected errors'));
}

function addStatusCommand(program: Command, io: CliIo, exit: ExitHolder): void {
  targetCommand(
    program,
    'status',
    'show what is installed, whether it drifted, and live counters',
    `installed engine, settings, drift and counters; exit ${STATUS_EXIT.healthy} healthy, ${STATUS_EXIT.notInstalled} not installed, ${STATUS_EXIT.drift} drift`,
  )
    .addOption(new Option('--json', 'print JSON'))
    .addOption(new Option('--prometheus', 'print the Prometheus text format (node_exporter textfile collector)'))
    .addOption(new Option('--settings', 'print only the recorded settings as a config file (for install --config -)'))
    .action(async (opts: { json?: boolean; prometheus?: boolean; settings?: boolean; ebpfBpffsPath?: string; iptablesBackend?: string }) => {
      if ([opts.json, opts.prometheus, opts.settings].filter(Boolean).length > 1) {
        throw new UsageError('status: --json, --prometheus and --settings exclude each other');
      }
      const { renderStatusJson, renderStatusPrometheus, renderStatusSettings, renderStatusText, status } = await import('./commands/status.js');
      const report = await status(opts);
      if (opts.settings) {
        const text = renderStatusSettings(report);
        if (text === undefined) throw new UsageError('status: no recorded settings (nothing installed, or installed without a record)');
        io.stdout(text);
      } else if (opts.json) io.stdout(`${renderStatusJson(report)}\n`);
      else if (opts.prometheus) io.stdout(renderStatusPrometheus(report));
      else for (const l of renderStatusText(report)) io.stdout(`${l}\n`);
      exit.code = opts.settings ? 0 : report.exitCode;
    });
}

function addVerifyCommand(program: Command, io: CliIo, exit: ExitHolder): void {
  targetCommand(
    program,
    'verify',
    'prove with real connections that redirection works',
    `listen on the proxy's ports, connect to TEST-NET addresses as a redirected uid, check where it lands; exit ${VERIFY_EXIT.passed} passed, ${VERIFY_EXIT.failed} failed, ${VERIFY_EXIT.notInstalled} not installed`,
  )
    .addOption(new Option('--uid <uid>', 'the ordinary uid the probes run as (default: 65534, or the next uid the settings redirect)'))
    .action(async (opts: { uid?: string; ebpfBpffsPath?: string; iptablesBackend?: string }) => {
      const r = await (await import('./commands/verify.js')).verify(opts);
      for (const l of r.lines) io.stdout(`${l}\n`);
      exit.code = r.exitCode;
    });
}

function buildProgram(io: CliIo, logger: Logger, steps: Steps, exit: ExitHolder = { code: 0 }): Command {
  const program = new Command('tpctl');
  program
    .description('Transparent proxying for a service-mesh sidecar (kumactl install/uninstall transparent-proxy): iptables, nftables or eBPF')
    .version(packageVersion(), '-v, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .exitOverride()
    .showSuggestionAfterError(true)
    .allowExcessArguments(false)
    .configureOutput({
      writeOut: (s) => io.stdout(s),
      writeErr: (s) => io.stderr(s),
      outputError: () => {}, // runCli prints the one line
    })
    .argument('[command]')
    .action((name?: string) => {
      if (name === undefined) throw new UsageError('missing command (expected install, uninstall, status or verify; see tpctl --help)');
      throw new UsageError(`unknown command '${name}' (expected install, uninstall, status or verify)`);
    });

  for (const [verb, v] of Object.entries(VERBS)) {
    const group = program
      .command(verb)
      .description(`${verb} transparent proxying on this host`)
      .argument('[what]')
      .action((what?: string) => {
        if (what === undefined) throw new UsageError(`${verb}: missing what to ${verb} (expected: transparent-proxy)`);
        throw new UsageError(`${verb}: unknown target '${what}' (expected: transparent-proxy)`);
      });
    v.addOptions(group.command('transparent-proxy').allowExcessArguments(false))
      .description(v.description)
      .action(async (_opts, cmd: Command) => {
        // The result lines (what was done, or the dry-run text), then a one-line summary.
        const result = await v.run(givenFlags(cmd), logger, io.env, steps);
        for (const line of result.lines) io.stdout(`${line}\n`);
        if (!result.dryRun) io.stdout(`${result.changed ? v.done : v.noop}\n`);
      });
  }
  addStatusCommand(program, io, exit);
  addVerifyCommand(program, io, exit);
  return program;
}

/** Edit distance, for "did you mean" on command words. */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

function closest(word: string, candidates: readonly string[]): string | undefined {
  const best = candidates.map((c) => ({ c, d: editDistance(word.toLowerCase(), c) })).sort((x, y) => x.d - y.d)[0];
  return best && best.d <= Math.max(2, Math.floor(best.c.length / 3)) ? best.c : undefined;
}

const shortWord = (w: string): string => (w.length > 40 ? `${w.slice(0, 40)}…` : w);

const TARGET = 'transparent-proxy';
/** The read-only commands (status, verify), besides the VERBS that change the host. */
const READ_ONLY_COMMANDS = ['status', 'verify'];

/**
 * `tpctl VERB transparent-proxy [flags]`: the two words are checked before commander
 * sees them, so a typo in either is named as such (commander would call a wrong verb
 * "too many arguments" and a missing target an unknown option of the verb).
 */
function checkCommandWords(argv: string[]): void {
  const [verb, target] = argv;
  if (verb === undefined || verb.startsWith('-') || verb === 'help') return; // --help, --version, no command
  const commands = [...Object.keys(VERBS), ...READ_ONLY_COMMANDS];
  if (!commands.includes(verb)) {
    const guess = closest(verb, commands);
    throw new UsageError(`unknown command '${shortWord(verb)}' (${guess ? `did you mean ${guess}?` : 'expected install, uninstall, status or verify'})`);
  }
  if (target === undefined || target.startsWith('-')) {
    if (argv.includes('--help') || argv.includes('-h')) return;
    const what = verb in VERBS ? `what to ${verb}` : 'what';
    throw new UsageError(`${verb}: missing ${what} (expected: ${verb in VERBS ? `tpctl ${verb} ${TARGET} [flags]` : TARGET})`);
  }
  if (target !== TARGET) {
    const guess = closest(target, [TARGET]);
    throw new UsageError(`${verb}: unknown target '${shortWord(target)}' (${guess ? `did you mean ${guess}?` : `expected: ${TARGET}`})`);
  }
}

/** Values are excerpted where messages are made; this bounds whatever slipped through (full text with --verbose). */
const ERROR_LINE_MAX = 600;
function capped(line: string, verbose: boolean): string {
  return verbose || line.length <= ERROR_LINE_MAX ? line : `${line.slice(0, ERROR_LINE_MAX)}… (cut; --verbose shows all of it)`;
}

function oneLine(text: string): string {
  return text
    .replace(/^error:\s*/, '')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' ');
}

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function runCli(argv: string[], io: CliIo = processIo): Promise<number> {
  const verbose = argv.some((a) => a === '--verbose' || a === '--verbose=true' || a === '--verbose=1') || io.env['TPCTL_DEBUG'] === '1';
  const logger: Logger = {
    info: (m) => io.stdout(`${m}\n`),
    warn: (m) => io.stderr(`warning: ${m}\n`),
    debug: (m) => {
      if (verbose) io.stderr(`debug: ${m}\n`);
    },
  };
  try {
    checkCommandWords(argv);
    const exit: ExitHolder = { code: 0 };
    // Test-only step hooks, read here once (TPCTL_FAIL_AT, TPCTL_STOP_AT, TPCTL_TRACE_STEPS).
    const steps = new Steps(stepHooksFromEnv(io.env));
    await buildProgram(io, logger, steps, exit).parseAsync(argv, { from: 'user' });
    return exit.code;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return 0;
      io.stderr(`error: ${capped(oneLine(e.message), verbose)}\n`);
      return 2;
    }
    if (e instanceof UsageError) {
      io.stderr(`error: ${capped(e.message, verbose)}\n`);
      return 2;
    }
    if (isTpError(e)) {
      io.stderr(`error: ${capped(e.oneLine(), verbose)}\n`);
      if (verbose && e.stack) io.stderr(`${e.stack}\n`);
      return e.exitCode;
    }
    const err = e instanceof Error ? e : new Error(String(e));
    io.stderr(`error: ${capped(oneLine(err.message), verbose) || err.name}\n`);
    if (verbose && err.stack) io.stderr(`${err.stack}\n`);
    return 1;
  }
}

function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  // `tpctl ... --dry-run | head` closes the pipe early: that is not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exit(process.exitCode ?? 0);
  });
  runCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`error: ${String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
