/** Small file primitives the ledger's durable state is built on. */
import fs from 'node:fs/promises';
import path from 'node:path';

/** Warden's files hold ledger records, checkpoints and breaker state: readable by its own user only. */
export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

/**
 * Replaces `file` with `data` so that a crash leaves either the old content or the new, never a mix:
 * write a temporary file, fsync it (unless told not to), rename it over the old one.
 */
export async function replaceFile(file: string, data: string, opts: { fsync?: boolean } = {}): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: PRIVATE_DIR_MODE });
  const tmp = `${file}.tmp`;
  const fh = await fs.open(tmp, 'w', PRIVATE_FILE_MODE);
  try {
    await fh.chmod(PRIVATE_FILE_MODE); // a leftover .tmp keeps its old mode otherwise
    await fh.writeFile(data);
    if (opts.fsync !== false) await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.rename(tmp, file);
}

/** pwrite until done: a regular-file write can be short (e.g. at a file-size limit). */
export async function writeAll(fh: fs.FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    if (bytesWritten === 0) throw new Error('write made no progress');
    done += bytesWritten;
  }
}
