/**
 * Where tpctl's files under /etc live. TPCTL_ROOT (an absolute directory) moves them
 * all under it, as `systemctl --root` does: tests write there, never to the real /etc.
 */
import { join } from 'node:path';

export function hostRoot(env: NodeJS.ProcessEnv = process.env): string {
  const root = env['TPCTL_ROOT'];
  return root && root !== '/' ? root : '/';
}

/** `/etc/x` under the root. */
export function hostPath(path: string, env: NodeJS.ProcessEnv = process.env): string {
  const root = hostRoot(env);
  return root === '/' ? path : join(root, path);
}
