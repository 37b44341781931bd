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
import koffi from 'koffi';
import { PreflightError } from './errors.js';

export type NativeLibrary = ReturnType<typeof koffi.load>;
export { koffi };

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
