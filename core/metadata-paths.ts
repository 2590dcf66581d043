/**
 * Where a job's correlation ID and model/policy versions are read from, by configured paths into the
 * job's own data (BullMQ `data.<path>`, Celery `kwargs.<path>` / `args.<i>`), and the served model
 * from its result: one shape for every collector, validated once by the config schema.
 */
export interface MetadataPaths {
  correlation_id?: string;
  model?: string;
  model_version?: string;
  policy?: string;
  policy_version?: string;
  /** Read from the result on completion: the model that actually answered. */
  served_model?: string;
  served_model_version?: string;
}
