// Every limit of the page, named with its unit: the page keeps and shows a bounded amount of a
// share however large the share is (docs/viewer.md, "Limits").

/** Documents kept in memory (documents); past it the least recently written are dropped, visibly. */
export const MAX_DOCUMENTS = 20_000;
/** Value bytes kept in memory over all documents (bytes); past it the least recently written are dropped, visibly. */
export const MAX_DOCUMENT_BYTES = 64 * 1024 * 1024;
/** Committed ops kept for the op tail (ops): the newest. */
export const MAX_TAIL_OPS = 1_000;
/** Ops from before the snapshot read once for the tail (ops), so it shows recent history at once. */
export const TAIL_BACKFILL_OPS = 200;
/** Snapshot documents gathered before the last chunk arrives (documents); a larger snapshot keeps the newest. */
export const MAX_SNAPSHOT_DOCUMENTS = MAX_DOCUMENTS;
/** Records that could not be read, kept for the notice (records); all are counted. */
export const MAX_SKIPPED_KEPT = 100;

/** Messages per page of the conversation (messages). */
export const MESSAGES_PER_PAGE = 50;
/** Diffs per page (diffs). */
export const DIFFS_PER_PAGE = 20;
/** Documents per page of a collection (documents). */
export const DOCUMENTS_PER_PAGE = 50;
/** Ops per page of the op tail (ops). */
export const TAIL_OPS_PER_PAGE = 50;

/** Characters of one text, output, patch or value rendered (UTF-16 chars); the rest is counted, not shown. */
export const MAX_RENDERED_TEXT_CHARS = 64 * 1024;
/** Characters of a one-line value preview (UTF-16 chars). */
export const MAX_PREVIEW_CHARS = 300;

/** Fewest milliseconds between two renders (ms): a catch-up of many ops renders a few times, not once per op. */
export const RENDER_INTERVAL_MS = 100;
/** First reconnect pause (ms); it doubles up to the maximum, each drawn from [d/2, d] as the SDK does. */
export const BACKOFF_INITIAL_MS = 250;
/** Longest reconnect pause (ms). */
export const BACKOFF_MAX_MS = 3_000;
/** A stream that delivers nothing for this long is treated as dropped (ms): the server heartbeats every 5 s. */
export const STREAM_SILENCE_MS = 20_000;
/** RedeemShare deadline (ms). */
export const REDEEM_TIMEOUT_MS = 10_000;
