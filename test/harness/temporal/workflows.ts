/** Workflows the replay tests run (bundled into the sandbox: imports @temporalio/workflow only). */
import { condition, continueAsNew, defineSignal, defineUpdate, executeChild, proxyActivities, setHandler } from '@temporalio/workflow';

interface Claim { id: string; contact: string }
interface Approval { actor: string; reason: string; subject?: string; approved?: boolean }

const { scoreClaim, payClaim } = proxyActivities<{
  scoreClaim(c: Claim): Promise<{ score: number }>;
  payClaim(c: Claim): Promise<string>;
}>({ startToCloseTimeout: '1 minute' });

export const approveSignal = defineSignal<[Approval]>('approve');
export const rejectSignal = defineSignal<[Approval]>('reject');
export const noteSignal = defineSignal<[string]>('note');

/** Scores a claim, runs a fraud check as a child, waits for a human approval, then pays. */
export async function claimWorkflow(claim: Claim): Promise<{ score: number; fraud: string; paid: string | null }> {
  let decision: boolean | undefined;
  setHandler(approveSignal, () => { decision = true; });
  setHandler(rejectSignal, () => { decision = false; });
  setHandler(noteSignal, () => undefined);
  const { score } = await scoreClaim(claim);
  const fraud = await executeChild(fraudCheck, { args: [claim], workflowId: `fraud-${claim.id}` });
  await condition(() => decision !== undefined);
  const paid = decision ? await payClaim(claim) : null;
  return { score, fraud, paid };
}

export async function fraudCheck(claim: Claim): Promise<string> {
  return claim.id.startsWith('X') ? 'suspicious' : 'clean';
}

/** Continues as new once, to check the headers handed to the next run. */
export async function batchWorkflow(round: number): Promise<number> {
  if (round < 1) await continueAsNew<typeof batchWorkflow>(round + 1);
  return round;
}

export const approveUpdate = defineUpdate<string, [Approval]>('approve');

/** Waits for an approval sent as an update (the caller gets an answer back). */
export async function limitWorkflow(limit: number): Promise<number> {
  let approved = false;
  setHandler(approveUpdate, (a) => { approved = a.approved !== false; return approved ? 'accepted' : 'refused'; });
  await condition(() => approved);
  return limit;
}
