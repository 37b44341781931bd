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

let koffiModule: Koffi | undefined;
/**
 * koffi itself (a native addon, ~10 ms to load) is required on first use, not at
 * import: `tpctl --version`, `--dry-run` and the iptables engine never need it. The
 * proxy keeps call sites plain (`koffi.struct(...)`); koffi's functions do not use `this`.
 */
export const koffi: Koffi = new Proxy({} as Koffi, {
  get: (_target, prop) => Reflect.get((koffiModule ??= createRequire(import.meta.url)('koffi') as Koffi), prop),
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
