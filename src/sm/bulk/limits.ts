/** The largest bulk job the operator API takes: chips, transfers in flight, transfers started per second. */
export const BULK_LIMITS = { eids: 200_000, concurrency: 10_000, ratePerSecond: 100_000 } as const;
