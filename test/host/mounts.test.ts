import { describe, expect, it } from 'vitest';
import { findCgroup2Mount, mountOf, parseMountInfo } from '../../src/host/mounts.js';

const HYBRID = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
22 1 0:20 / / rw,relatime - ext4 /dev/vda1 rw
44 27 0:39 / /sys/fs/bpf rw,relatime shared:9 - bpf bpf rw
45 22 0:40 / /tmp/with\\040space rw,relatime - bpf bpf rw
`;

describe('mountinfo', () => {
  const mounts = parseMountInfo(HYBRID);

  it('parses fields including optional ones and octal escapes', () => {
    expect(mounts).toContainEqual({ mountPoint: '/sys/fs/bpf', fsType: 'bpf', source: 'bpf' });
    expect(mounts).toContainEqual({ mountPoint: '/tmp/with space', fsType: 'bpf', source: 'bpf' });
  });

  it('finds the cgroup2 mount on a hybrid host', () => {
    expect(findCgroup2Mount(mounts)).toBe('/sys/fs/cgroup/unified');
    expect(findCgroup2Mount(parseMountInfo('22 1 0:20 / / rw - ext4 /dev/vda1 rw'))).toBeUndefined();
  });

  it('maps a path to the mount holding it (longest prefix)', () => {
    expect(mountOf('/sys/fs/cgroup/unified/child', mounts)?.fsType).toBe('cgroup2');
    expect(mountOf('/sys/fs/cgroup/cpu', mounts)?.fsType).toBe('cgroup');
    expect(mountOf('/sys/fs/cgroup/unifiedx', mounts)?.fsType).toBe('tmpfs');
    expect(mountOf('/sys/fs/bpf/tpctl', mounts)?.fsType).toBe('bpf');
    expect(mountOf('/run/tpctl/bpf', mounts)?.fsType).toBe('ext4');
  });
});
