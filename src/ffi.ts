/**
 * The one place tpctl loads native libraries (koffi.load). Everything native goes
 * through here so the binding is easy to see, audit and replace:
 *   - libbpf.so.1  → src/ebpf/libbpf.ts declares the functions used
 *   - libc.so.6    → src/host/libc.ts declares the few socket calls used
 *
 * Loading is lazy: importing tpctl never touches the filesystem; the first call
 * that needs a library loads it and a missing library becomes a PreflightError
 * naming the Debian package to install.
 */
import { createRequire } from 'node:module';
import { PreflightError } from './errors.js';

type Koffi = typeof import('koffi');
export type NativeLibrary = ReturnType<Koffi['load']>;

/** koffi's directory name for this platform's prebuilt addon, where it is plain glibc Linux. */
const ADDON_TRIPLET: Partial<Record<string, string>> = { x64: 'linux_x64', arm64: 'linux_arm64' };

/**
 * koffi's native addon. Its index.js wraps the same addon (adding only deprecated
 * aliases tpctl never calls) but first loads koffi's own build tooling, and with it
 * node's https, zlib and crypto: ~7 ms against ~2 ms for the addon alone, paid by
 * every install (the host lock's flock is a libc call). So the glibc addon is
 * required directly where its path is known; where that fails (musl: it will not
 * link) or on other architectures, index.js finds the right one itself.
 */
function requireKoffi(): Koffi {
  const require = createRequire(import.meta.url);
  const triplet = process.platform === 'linux' ? ADDON_TRIPLET[process.arch] : undefined;
  if (triplet) {
    try {
      return require(`koffi/build/koffi/${triplet}/koffi.node`) as Koffi;
    } catch {
      // not there, or not for this libc: let index.js look
    }
  }
  return require('koffi') as Koffi;
}

let koffiModule: Koffi | undefined;
/**
 * koffi itself (a native addon) is required on first use, not at import: `tpctl
 * --version` and `--dry-run` never need it. The proxy keeps call sites plain
 * (`koffi.struct(...)`); koffi's functions do not use `this`.
 */
export const koffi: Koffi = new Proxy({} as Koffi, {
  get: (_target, prop) => Reflect.get((koffiModule ??= requireKoffi()), prop),
});

const loaded = new Map<string, NativeLibrary>();

const packageFor: Record<string, string> = {
  'libbpf.so.1': 'libbpf1',
  'libc.so.6': 'libc6',
};

export function loadLibrary(soname: string): NativeLibrary {
  const cached = loaded.get(soname);
  if (cached) return cached;
  let lib: NativeLibrary;
  try {
    lib = koffi.load(soname);
  } catch (e) {
    const pkg = packageFor[soname];
    throw new PreflightError(`load ${soname}: ${(e as Error).message.split('\n')[0]}`, {
      hint: pkg ? `install it: apt-get install ${pkg}` : undefined,
      cause: e,
    });
  }
  loaded.set(soname, lib);
  return lib;
}

/** The name of an errno value (ENOENT …), for messages about a failed native call. */
export function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(koffi.os.errno)) {
    if (value === errno) return name;
  }
  return `errno ${errno}`;
}
