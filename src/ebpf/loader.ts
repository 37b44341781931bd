/**
 * Opens and loads the prebuilt objects. Every object is opened with
 * pin_root_path = the bpffs path, so maps declared LIBBPF_PIN_BY_NAME are created
 * and pinned by the first object and reused by the next ones (and by a later
 * install): one set of maps shared by all programs.
 */
import { join } from 'node:path';
import { EngineError, LibbpfError } from '../errors.js';
import { BpfObject, clearLibbpfLog, libbpfLog, type ProgramInfo } from './libbpf.js';
import { abiMismatches } from './abi.js';
import { Btf } from './btf.js';
import { ABI_CONTRACT, OBJECT_FILES, PROGRAM_SPECS } from './spec.js';

export interface LoadedObjects {
  program(name: string): ProgramInfo;
  /** Closes every object: program and map fds are released (pins and links keep what matters). */
  close(): void;
}

/**
 * Checks an opened (not loaded) object against the contract: its programs and
 * sections, and in its BTF every enum, struct layout and map definition tpctl relies on.
 */
export function checkObjectContract(obj: BpfObject, file: string): void {
  const programs = obj.programs();
  for (const want of PROGRAM_SPECS.filter((x) => x.object === file)) {
    const got = programs.find((x) => x.name === want.name);
    if (!got) throw new EngineError(`${obj.path}: program ${want.name} missing`, { hint: 'rebuild the objects (make bpf)' });
    if (got.section !== want.section) {
      throw new EngineError(`${obj.path}: program ${want.name} is in section ${got.section}, expected ${want.section}`);
    }
  }
  let btf: Btf;
  try {
    btf = Btf.fromObjectFile(obj.path);
  } catch (e) {
    throw new EngineError((e as Error).message, { hint: 'tpctl checks the layout of every object against its BTF: build it with clang -g (make bpf)' });
  }
  const mismatches = abiMismatches(btf, ABI_CONTRACT, 'ignore');
  if (mismatches.length > 0) {
    const more = mismatches.length > 1 ? ` (and ${mismatches.length - 1} more)` : '';
    throw new EngineError(`${obj.path}: ${mismatches[0]}${more}`, {
      hint: 'the object was built from another bpf/include/abi.h or maps.h than this tpctl; use the objects shipped with it, or rebuild them (make bpf)',
    });
  }
}

/**
 * A map the kernel would not create for lack of memory: say which limit that is.
 * Since 5.11 BPF memory is charged to the memory cgroup of the creating process;
 * before, to RLIMIT_MEMLOCK (EPERM).
 */
export function mapMemoryHint(errno: string, log: string[]): string | undefined {
  const map = log.map((l) => /map '([^']+)': failed to create/.exec(l)?.[1]).find(Boolean);
  if (!map || !['ENOMEM', 'E2BIG', 'EPERM'].includes(errno)) return undefined;
  return (
    `the kernel could not allocate BPF map ${map}: maps are charged to tpctl's memory cgroup (memory.max), ` +
    'or to RLIMIT_MEMLOCK (ulimit -l) before Linux 5.11; raise that limit or exclude fewer addresses'
  );
}

function loadError(e: LibbpfError, file: string, verbose: boolean): LibbpfError {
  const warn = libbpfLog(0)
    .flatMap((l) => l.text.split('\n'))
    .map((l) => l.trimEnd())
    .filter(Boolean);
  // Without --verbose: the last libbpf complaint (names the failing program). With it:
  // the tail of the verifier log as well.
  const lines = verbose ? warn.slice(-60) : warn.filter((l) => l.startsWith('libbpf:')).slice(-2);
  const detail = `${file}${lines.length ? `: ${lines.join('\n')}` : ''}`;
  return new LibbpfError(e.op, e.errno, e.errnoName, detail, {
    hint: mapMemoryHint(e.errnoName, warn) ?? (verbose ? undefined : 'rerun with --verbose for the verifier log'),
    cause: e,
  });
}

/**
 * Opens and loads every object but the programs in `skip` (spec.ts unusedPrograms). `capacities` (map name → entries) sizes the settings
 * maps before load; every object declares every map and reuses the first one's pin,
 * so each gets the same sizes (libbpf refuses a pin whose max_entries differ).
 */
export function openAndLoad(
  sourceDir: string,
  bpffsPath: string,
  verbose: boolean,
  capacities?: ReadonlyMap<string, number>,
  skip: ReadonlySet<string> = new Set(),
): LoadedObjects {
  const objects: BpfObject[] = [];
  const close = (): void => {
    for (const o of objects.splice(0)) o.close();
  };
  try {
    for (const file of OBJECT_FILES) {
      const obj = BpfObject.open(join(sourceDir, file), bpffsPath);
      objects.push(obj);
      checkObjectContract(obj, file);
      obj.skipPrograms(skip);
      for (const mp of obj.maps()) {
        const want = capacities?.get(mp.name);
        if (want !== undefined && want !== mp.maxEntries) obj.setMaxEntries(mp.name, want);
      }
      clearLibbpfLog();
      try {
        obj.load();
      } catch (e) {
        throw e instanceof LibbpfError ? loadError(e, file, verbose) : e;
      }
    }
  } catch (e) {
    close();
    throw e;
  }
  return {
    program(name) {
      for (const o of objects) {
        const found = o.programs().find((x) => x.name === name);
        if (found) return found;
      }
      throw new EngineError(`program ${name}: not in any loaded object`);
    },
    close,
  };
}
