import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CONFIG_MAX_BYTES, ConfigTooLargeError, defaultConfigReaders, loadConfigFiles, parseConfigText, readAllStdin } from '../../src/config/load.js';

const oneLine = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return (e as { oneLine(): string }).oneLine();
  }
  return 'no error';
};

describe('config sources are read with a size limit', () => {
  it('a file over 16 MiB is refused, and the reader stops at the limit', async () => {
    const dir = mkdtempSync(join(tmpdir(), `tpt-i7-load-${process.pid}-`));
    try {
      const big = join(dir, 'big.yaml');
      writeFileSync(big, 'x'.repeat(CONFIG_MAX_BYTES + 1));
      await expect(defaultConfigReaders.readFile(big)).rejects.toBeInstanceOf(ConfigTooLargeError);
      await expect(loadConfigFiles([big])).rejects.toThrow(`--config: ${big} is larger than 16 MiB, the limit for config files`);
      const fits = join(dir, 'fits.yaml');
      writeFileSync(fits, `wait: 3\n#${'x'.repeat(CONFIG_MAX_BYTES - 20)}`);
      expect((await loadConfigFiles([fits]))[0]?.data).toEqual({ wait: 3 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stdin is cut off at the limit too', async () => {
    const endless = Readable.from((function* () {
      for (let i = 0; i < 10_000; i++) yield Buffer.alloc(64 * 1024, 0x61);
    })());
    await expect(readAllStdin(endless)).rejects.toBeInstanceOf(ConfigTooLargeError);
  });
});

describe('config text', () => {
  it('names a key given twice, at any depth, in YAML and JSON', () => {
    expect(oneLine(() => parseConfigText('tp.json', '{"redirect": {"dns": {"port": 1}, "inbound": {"port": 1, "port": 2}}}'))).toBe(
      'tp.json: redirect.inbound.port: key given twice (keep one of them)',
    );
    expect(oneLine(() => parseConfigText('tp.yaml', 'kumaDPUser: a\nkumaDPUser: b\n'))).toBe('tp.yaml: kumaDPUser: key given twice (keep one of them)');
  });

  it('a parser error is one short line, whatever the input', () => {
    const line = oneLine(() => parseConfigText('bin.cfg', `{${'\u0001'.repeat(5000)}: [`));
    expect(line.startsWith('bin.cfg: not valid YAML or JSON: ')).toBe(true);
    expect(line.length).toBeLessThanOrEqual(200);
  });
});
