/** Stable codes of MetricsError, one per kind of misuse. */
export type MetricsErrorCode =
  | 'WEFT_ERR_METRIC_NAME'
  | 'WEFT_ERR_METRIC_CONFLICT'
  | 'WEFT_ERR_METRIC_LABEL'
  | 'WEFT_ERR_METRIC_BUCKETS'
  | 'WEFT_ERR_METRICS_OPTIONS';

/**
 * A misuse of the metrics registry (bad name, label name, buckets or options). Thrown only at
 * registration, at construction, or by `with()` for a label set it has not seen: never by updates.
 */
export class MetricsError extends Error {
  readonly code: MetricsErrorCode;
  constructor(code: MetricsErrorCode, message: string) {
    super(message);
    this.name = 'MetricsError';
    this.code = code;
  }
}
