/**
 * A kysely introspector for PostgreSQL that sees only the connection's current schema.
 *
 * kysely's own PostgresIntrospector reads the columns of every schema in the database and calls
 * `has_schema_privilege(nspname, 'USAGE')` and `pg_get_serial_sequence(...)` on each one's name.
 * Those functions look the name up again in the latest catalog, so a schema that another session
 * drops between the scan and the lookup fails the whole query with `schema "<other>" does not
 * exist` (3F000). The migrator runs that query on every open, so any store opened while someone
 * else drops a schema in the same database (test suites do, all the time) could fail to open.
 *
 * This one joins the catalogs by OID and filters on `current_schema()`, which resolves the
 * search_path and skips missing schemas instead of failing: nothing in it looks a name up.
 */
import {
  type ColumnMetadata,
  type DatabaseIntrospector,
  type DatabaseMetadata,
  type DatabaseMetadataOptions,
  DEFAULT_MIGRATION_LOCK_TABLE,
  DEFAULT_MIGRATION_TABLE,
  type Kysely,
  PostgresDialect,
  type QueryExecutorProvider,
  type SchemaMetadata,
  sql,
  type TableMetadata,
} from 'kysely';

interface ColumnRow {
  readonly schema: string;
  readonly table: string;
  readonly kind: string;
  readonly column: string;
  readonly not_null: boolean;
  readonly has_default: boolean;
  readonly auto_incrementing: boolean;
  readonly type: string;
  readonly type_schema: string;
}

export class CurrentSchemaIntrospector implements DatabaseIntrospector {
  readonly #db: QueryExecutorProvider;

  /** `db`: a Kysely instance (of any database type) or anything else that runs raw SQL. */
  constructor(db: QueryExecutorProvider) {
    this.#db = db;
  }

  /** The current schema, when it exists: the only one this store uses. */
  async getSchemas(): Promise<SchemaMetadata[]> {
    const { rows } = await sql<{ name: string | null }>`SELECT current_schema() AS name`.execute(this.#db);
    const name = rows[0]?.name;
    return typeof name === 'string' ? [{ name }] : [];
  }

  /** The tables and views of the current schema, with their columns in column order. */
  async getTables(options?: DatabaseMetadataOptions): Promise<TableMetadata[]> {
    const { rows } = await sql<ColumnRow>`
      SELECT n.nspname AS schema, c.relname AS table, c.relkind AS kind, a.attname AS column,
             a.attnotnull AS not_null, a.atthasdef AS has_default,
             (a.attidentity <> '' OR COALESCE(pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%', false))
               AS auto_incrementing,
             t.typname AS type, tn.nspname AS type_schema
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
        JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
        JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
        LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
       WHERE n.nspname = current_schema()
         AND c.relkind IN ('r', 'v', 'p')
         AND a.attnum > 0
         AND NOT a.attisdropped
       ORDER BY c.relname, a.attnum`.execute(this.#db);
    const internal = new Set([DEFAULT_MIGRATION_TABLE, DEFAULT_MIGRATION_LOCK_TABLE]);
    const tables = new Map<string, { table: TableMetadata; columns: ColumnMetadata[] }>();
    for (const row of rows) {
      if (options?.withInternalKyselyTables !== true && internal.has(row.table)) continue;
      let entry = tables.get(row.table);
      if (entry === undefined) {
        const columns: ColumnMetadata[] = [];
        entry = {
          table: { name: row.table, schema: row.schema, isView: row.kind === 'v', columns },
          columns,
        };
        tables.set(row.table, entry);
      }
      entry.columns.push({
        name: row.column,
        dataType: row.type,
        dataTypeSchema: row.type_schema,
        isAutoIncrementing: row.auto_incrementing,
        isNullable: !row.not_null,
        hasDefaultValue: row.has_default,
      });
    }
    return [...tables.values()].map((e) => e.table);
  }

  async getMetadata(options?: DatabaseMetadataOptions): Promise<DatabaseMetadata> {
    return { tables: await this.getTables(options) };
  }
}

/** kysely's PostgreSQL dialect with the current-schema introspector (what the migrator uses). */
export class CurrentSchemaPostgresDialect extends PostgresDialect {
  override createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new CurrentSchemaIntrospector(db);
  }
}
