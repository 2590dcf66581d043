/**
 * The Ed25519 key that signs checkpoints.
 *
 * By default the agent generates it on first start into `<dataDir>/keys/ledger-ed25519.pem` (PKCS#8,
 * mode 0600, directory 0700) and writes the public half beside it as `ledger-ed25519.pub.pem` (SPKI).
 * A configured key file (`ledger.signingKeyFile`, WARDEN_SIGNING_KEY_FILE) is used instead and never
 * written to; its public half is still written to `<dataDir>/keys/ledger-ed25519.pub.pem`. Auditors need only the public key; its id (`key_id` in every checkpoint) is the first
 * 16 hex digits of sha256 over its DER (SPKI) encoding.
 */
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { CheckpointError } from './errors.js';

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  keyId: string;
  /** The private key file. */
  file: string;
  /** `<dataDir>/keys/ledger-ed25519.pub.pem`: the public half, kept current for `warden ledger verify`. */
  publicFile: string;
  /** true when this call generated the key. */
  created: boolean;
  /** Things an operator should hear about (loose permissions, a public key file that was rewritten). */
  warnings: string[];
}

export function keyPaths(dataDir: string): { privateFile: string; publicFile: string } {
  const dir = path.join(path.resolve(dataDir), 'keys');
  return { privateFile: path.join(dir, 'ledger-ed25519.pem'), publicFile: path.join(dir, 'ledger-ed25519.pub.pem') };
}

export function keyIdOf(publicKey: KeyObject): string {
  return crypto.createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

export function publicKeyPem(publicKey: KeyObject): string {
  return publicKey.export({ type: 'spki', format: 'pem' }).toString();
}

/** The configured key, or the data directory's key (generated on first use). */
export async function loadOrCreateSigningKey(dataDir: string, keyFile?: string): Promise<SigningKey> {
  const paths = keyPaths(dataDir);
  const { publicFile } = paths;
  const privateFile = keyFile ? path.resolve(keyFile) : paths.privateFile;
  let created = false;
  let privateKey: KeyObject;
  try {
    privateKey = await readPrivateKey(privateFile);
  } catch (err) {
    if (keyFile || !(err instanceof CheckpointError && err.errno === 'ENOENT')) throw err;
    privateKey = await generate(privateFile);
    created = true;
  }
  const publicKey = crypto.createPublicKey(privateKey);
  const warnings = await permissionWarnings(privateFile);
  const pem = publicKeyPem(publicKey);
  const existing = await fs.readFile(publicFile, 'utf8').catch(() => null);
  if (existing !== pem) {
    if (existing !== null) warnings.push(`${publicFile} did not hold the public half of ${privateFile}; it was rewritten`);
    await writeDurably(publicFile, pem, 0o644);
  }
  return { privateKey, publicKey, keyId: keyIdOf(publicKey), file: privateFile, publicFile, created, warnings };
}

/** A public key from a PEM file: an SPKI public key, or a private key whose public half is taken. */
export async function loadPublicKey(file: string): Promise<KeyObject> {
  let pem: string;
  try {
    pem = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new CheckpointError(`cannot read the public key ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { code: 'WARDEN_USAGE' });
  }
  return publicKeyFromPem(pem, file);
}

export function publicKeyFromPem(pem: string, what = 'the key'): KeyObject {
  let key: KeyObject;
  try {
    key = crypto.createPublicKey(pem);
  } catch (err) {
    throw new CheckpointError(`${what} is not a PEM public or private key (${(err as Error).message})`, { code: 'WARDEN_USAGE' });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new CheckpointError(`${what} is a ${key.asymmetricKeyType} key; checkpoints are signed with Ed25519`, { code: 'WARDEN_USAGE' });
  return key;
}

async function readPrivateKey(file: string): Promise<KeyObject> {
  let pem: string;
  try {
    pem = await fs.readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CheckpointError(`cannot read the ledger signing key ${file} (${code ?? (err as Error).message})`, { errno: code, code: 'WARDEN_CONFIG' });
  }
  let key: KeyObject;
  try {
    key = crypto.createPrivateKey(pem);
  } catch (err) {
    throw new CheckpointError(`the ledger signing key ${file} is not a PEM private key (${(err as Error).message})`, { code: 'WARDEN_CONFIG' });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new CheckpointError(`the ledger signing key ${file} is a ${key.asymmetricKeyType} key; an Ed25519 key is needed (openssl genpkey -algorithm ed25519)`, { code: 'WARDEN_CONFIG' });
  }
  return key;
}

async function generate(privateFile: string): Promise<KeyObject> {
  await fs.mkdir(path.dirname(privateFile), { recursive: true, mode: 0o700 });
  const { privateKey } = crypto.generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  // 'wx': two agents starting at once must not each write a key and sign with different ones.
  try {
    await writeDurably(privateFile, pem, 0o600, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readPrivateKey(privateFile);
    throw err;
  }
  return privateKey;
}

async function writeDurably(file: string, text: string, mode: number, flag = 'w'): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const fh = await fs.open(file, flag, mode);
  try {
    await fh.writeFile(text);
    await fh.chmod(mode); // open's mode is filtered by the umask and ignored for an existing file
    await fh.sync();
  } finally {
    await fh.close();
  }
  const dir = await fs.open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

async function permissionWarnings(file: string): Promise<string[]> {
  const st = await fs.stat(file).catch(() => null);
  if (st && (st.mode & 0o077) !== 0) {
    return [`the ledger signing key ${file} is readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`];
  }
  return [];
}
