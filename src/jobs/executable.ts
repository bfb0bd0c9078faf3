// Whether a path names a file someone may execute (a regular file with an x bit).
import { stat } from 'node:fs/promises';

/** True for a regular file with any execute bit; false when missing or not such a file. */
export async function isExecutableFile(file: string): Promise<boolean> {
  const info = await stat(file).catch(() => null);
  return info !== null && info.isFile() && (info.mode & 0o111) !== 0;
}
