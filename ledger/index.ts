/** The ledger's public surface: the spool, record format, verification, queries, and signed Merkle checkpoints. */
export { Spool, type SpoolOptions, type SpoolStats } from './spool/spool.js';
export type { ReadOptions } from './spool/reader.js';
export type { RecoveryReport } from './spool/recover.js';
export {
  GENESIS_HASH, recordHash, serializeRecord, parseRecordLine, type LedgerRecord,
} from './spool/record.js';
export { verifyLedger, type VerifyResult, type VerifyProblem, type ProblemKind } from './spool/verify.js';
export { queryLedger, lineage, parseTimeArg } from './spool/query.js';
export { checkLedgerFilter, type LedgerFilter, type TimeRange } from './filter.js';
export {
  LedgerError, CorruptRecordError, SpoolCorruptError, SpoolClosedError, SpoolWriteError, SpoolFailedError,
  SpoolLockedError, InvalidEventError, LedgerNotFoundError, TimeArgError, InvalidFilterError,
} from './errors.js';
export {
  EMPTY_ROOT, leafHash, nodeHash, rootOf, MerkleFrontier, MemoryTree, NodeCollector, inclusionRanges, consistencyRanges,
  rootFromInclusionProof, verifyInclusion, verifyConsistency, type LeafRange, type SerializedFrontier,
} from './checkpoints/merkle.js';
export {
  Checkpointer, signCheckpoint, checkpointMessage, checkpointSignatureProblem, parseCheckpoint, readCheckpointFile, recordLeaf,
  checkpointsPath, CHECKPOINTS_FILE, type Checkpoint, type CheckpointerOptions, type CheckpointerOpenOptions, type CheckpointListener,
  type CheckpointerStats,
} from './checkpoints/checkpoint.js';
export { loadOrCreateSigningKey, loadPublicKey, publicKeyFromPem, keyIdOf, keyPaths, type SigningKey } from './checkpoints/keys.js';
export { verifyCheckpoints, type CheckpointVerifyResult, type CheckpointProblem, type CheckpointProblemKind } from './checkpoints/verify.js';
export {
  proveInclusion, buildInclusionProof, verifyInclusionProof, proveConsistency, verifyConsistencyProof, type InclusionProof, type ConsistencyProof,
  type ProofVerdict, type ProofStep,
} from './checkpoints/proof.js';
export { CheckpointError, CheckpointMismatchError } from './checkpoints/errors.js';
export {
  verifyStore, listLedgers, type StoreVerifyResult, type StoreVerifyProblem, type StoreProblemKind, type StoreVerifyOptions,
} from './store/verify.js';
export {
  queryEvents, countEvents, lineage as storeLineage, approvals, approvalsPerDay, versions, unapproved, decisions, decisionCounts,
  eventsSql, countEventsSql, lineageSql as storeLineageSql, approvalsSql, approvalsPerDaySql, versionsSql, unapprovedSql, decisionsSql, decisionCountsSql,
  REQUIRE_APPROVAL, APPROVAL_KINDS, COMPLETION_KINDS, RUN_KINDS,
  type EventFilter, type ApprovalFilter, type DecisionFilter, type VersionFilter, type UnapprovedFilter,
  type ApprovalRow, type ApprovalsPerDayRow, type VersionRow, type UnapprovedRow, type DecisionRow, type DecisionCountRow,
} from './compliance/queries.js';
export { exportEvents, eventPages, jsonlLine, type ExportFormat, type ExportOptions, type ExportProgress, type ExportResult } from './compliance/export.js';
