/** The ledger's public surface: the spool, record format, verification and queries. */
export { Spool, type SpoolOptions, type SpoolStats } from './spool.js';
export type { ReadOptions } from './reader.js';
export type { RecoveryReport } from './recover.js';
export {
  GENESIS_HASH, recordHash, serializeRecord, parseRecordLine, type LedgerRecord,
} from './record.js';
export { verifyLedger, type VerifyResult, type VerifyProblem, type ProblemKind } from './verify.js';
export { queryLedger, lineage, parseTimeArg, type LedgerFilter } from './query.js';
export {
  LedgerError, CorruptRecordError, SpoolCorruptError, SpoolClosedError, SpoolWriteError, SpoolFailedError,
  SpoolLockedError, InvalidEventError, LedgerNotFoundError, TimeArgError, InvalidFilterError,
} from './errors.js';
