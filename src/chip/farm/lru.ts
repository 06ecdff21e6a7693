/**
 * A Map with a size limit that drops its least recently used entry: how the farm keeps
 * per-chip things (card sessions, shared certificates) in memory without growing with the
 * number of chips.
 */
export class LruMap<K, V> {
  readonly #map = new Map<K, V>();
  readonly #limit: number;
  readonly #onEvict: ((key: K, value: V) => void) | undefined;

  constructor(limit: number, onEvict?: (key: K, value: V) => void) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError('an LRU limit is a positive integer');
    this.#limit = limit;
    this.#onEvict = onEvict;
  }

  get limit(): number {
    return this.#limit;
  }

  get size(): number {
    return this.#map.size;
  }

  has(key: K): boolean {
    return this.#map.has(key);
  }

  /** The value, now the most recently used; undefined when absent. */
  get(key: K): V | undefined {
    const value = this.#map.get(key);
    if (value === undefined) return undefined;
    this.#map.delete(key);
    this.#map.set(key, value);
    return value;
  }

  /** Adds or replaces (as the most recently used), dropping the least recently used beyond the limit. */
  set(key: K, value: V): this {
    this.#map.delete(key);
    this.#map.set(key, value);
    while (this.#map.size > this.#limit) {
      const oldest = this.#map.keys().next();
      if (oldest.done) break;
      const evicted = this.#map.get(oldest.value) as V;
      this.#map.delete(oldest.value);
      this.#onEvict?.(oldest.value, evicted);
    }
    return this;
  }

  delete(key: K): boolean {
    return this.#map.delete(key);
  }

  clear(): void {
    this.#map.clear();
  }

  keys(): IterableIterator<K> {
    return this.#map.keys();
  }
}
