//! In-server tests (`#[pg_test]`): behaviour that needs a backend but not a client's view.
//! What a psql user sees is covered by the SQL regression suite in pg_test/sql.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn the_library_is_preloaded_as_in_production() {
        let preload = Spi::get_one::<String>("SELECT current_setting('shared_preload_libraries')")
            .unwrap()
            .unwrap_or_default();
        assert!(preload.contains("migrate"), "{preload}");
        // The postmaster-level setting only exists when preloaded.
        assert!(
            Spi::get_one::<String>("SELECT current_setting('migrate.launcher_database')")
                .unwrap()
                .is_some()
        );
    }

    /// plan()'s reading of this backend's own relation locks agrees with pg_locks, for locks in
    /// the fast-path slots (weak locks on catalogs, more than fit in the slots) and in the main
    /// lock table (a table created here is held ACCESS EXCLUSIVE).
    #[pg_test]
    fn own_relation_locks_agree_with_pg_locks() {
        use std::collections::BTreeMap;
        Spi::run("CREATE TABLE lk_created (id int)").unwrap();
        let catalogs = Spi::get_one::<String>(
            "SELECT string_agg(format('(SELECT count(*) FROM pg_catalog.%I)', relname), ' + ')
             FROM (SELECT relname FROM pg_class
                   WHERE relnamespace = 'pg_catalog'::regnamespace AND relkind = 'r'
                   ORDER BY relname LIMIT 40) c",
        )
        .unwrap()
        .unwrap();
        Spi::run(&format!("SELECT {catalogs}")).unwrap();
        let from_pg_locks = || {
            let mut seen: BTreeMap<u32, u32> = BTreeMap::new();
            Spi::connect(|client| {
                let rows = client
                    .select(
                        "SELECT relation, array_position(ARRAY['AccessShareLock', 'RowShareLock',
                             'RowExclusiveLock', 'ShareUpdateExclusiveLock', 'ShareLock',
                             'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock'], mode)
                         FROM pg_locks
                         WHERE pid = pg_backend_pid() AND locktype = 'relation' AND granted
                           AND database = (SELECT oid FROM pg_database
                                           WHERE datname = current_database())",
                        None,
                        &[],
                    )
                    .unwrap();
                for row in rows {
                    let oid = row.get::<pg_sys::Oid>(1).unwrap().unwrap();
                    let mode = row.get::<i32>(2).unwrap().unwrap();
                    *seen.entry(oid.to_u32()).or_default() |= 1 << mode;
                }
            });
            seen
        };
        from_pg_locks(); // takes the locks the query itself needs
        let mut own: BTreeMap<u32, u32> = BTreeMap::new();
        for (oid, mask) in crate::pg::observe::own_relation_locks() {
            *own.entry(oid.to_u32()).or_default() |= mask;
        }
        let expected = from_pg_locks();
        assert!(expected.len() > 40, "{expected:?}");
        assert_eq!(own, expected);
    }

    #[pg_test]
    fn apply_runs_in_callers_transaction() {
        Spi::run("SELECT migrate.add('1', 'CREATE TABLE t1 (id int)', 'DROP TABLE t1')").unwrap();
        Spi::run("SELECT migrate.add('2', 'ALTER TABLE t1 ADD COLUMN v text', 'ALTER TABLE t1 DROP COLUMN v')").unwrap();
        let applied = Spi::get_one::<i64>("SELECT count(*) FROM migrate.apply()").unwrap();
        assert_eq!(applied, Some(2));
        let cols = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 't1'::regclass AND attnum > 0",
        )
        .unwrap();
        assert_eq!(cols, Some(2));
        let rolled =
            Spi::get_one::<String>("SELECT string_agg(version, ',') FROM migrate.rollback(2)")
                .unwrap();
        assert_eq!(rolled.as_deref(), Some("2,1"));
        assert_eq!(
            Spi::get_one::<bool>("SELECT to_regclass('t1') IS NULL").unwrap(),
            Some(true)
        );
    }

    #[pg_test(error = "migration 2 failed (up): division by zero")]
    fn failed_migration_names_the_version() {
        Spi::run("SELECT migrate.add('1', 'CREATE TABLE ok1 (id int)')").unwrap();
        Spi::run("SELECT migrate.add('2', 'CREATE TABLE bad (id int); SELECT 1/0')").unwrap();
        Spi::run("SELECT migrate.apply()").unwrap();
    }

    #[pg_test]
    fn checksum_function_matches_rust() {
        let sql = "CREATE TABLE x (id int);\r\n";
        let from_sql =
            Spi::get_one_with_args::<String>("SELECT migrate.checksum($1)", &[sql.into()])
                .unwrap()
                .unwrap();
        assert_eq!(
            from_sql,
            migrate_core::checksum::checksum("CREATE TABLE x (id int);\n")
        );
    }

    /// The jobs view's migrate.held_locks() and the Rust queries' held_sql() see the same lock.
    #[pg_test]
    fn held_locks_and_held_sql_agree() {
        use crate::pg::locks::{self, Mode, Namespace};
        const KEY: i32 = 424242;
        assert!(locks::try_lock(Namespace::Slot, KEY, Mode::Exclusive, true));
        let listed = Spi::get_one_with_args::<i64>(
            "SELECT count(*) FROM migrate.held_locks() \
             WHERE namespace = 3 AND key = $1 AND pid = pg_backend_pid()",
            &[i64::from(KEY).into()],
        )
        .unwrap();
        let matched = Spi::get_one_with_args::<i64>(
            &format!(
                "SELECT count(*) FROM pg_catalog.pg_locks l WHERE {} \
                 AND l.objid::int8 = $1 AND l.pid = pg_backend_pid()",
                locks::held_sql(Namespace::Slot)
            ),
            &[i64::from(KEY).into()],
        )
        .unwrap();
        locks::unlock(Namespace::Slot, KEY, Mode::Exclusive);
        assert_eq!((listed, matched), (Some(1), Some(1)));
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM migrate.held_locks() WHERE key = 424242")
                .unwrap(),
            Some(0)
        );
    }

    /// A fresh install has the statement counters. The fallback to rows_* (a 0.1.0 schema) is
    /// exercised by pg_test/upgrade/populate.sql, which deploys a migration job on 0.1.0.
    #[pg_test]
    fn a_fresh_install_counts_statements_in_their_own_columns() {
        use crate::worker::queue::StatementCounters;
        assert_eq!(StatementCounters::here(), StatementCounters::Own);
    }

    /// DML never reaches the guard: the executor runs it without a ProcessUtility call, and the
    /// hook passes every utility statement it does not judge (SET, SHOW, CREATE TABLE, ...)
    /// straight on. Only the statements it judges (here TRUNCATE) get to the judge.
    #[pg_test]
    fn dml_and_other_statements_never_reach_the_judge() {
        use crate::guard::judge::judged_count;
        assert!(
            crate::guard::hook::active(),
            "preloaded: the hook is installed"
        );
        Spi::run("CREATE TABLE hk (id int PRIMARY KEY, v text)").unwrap();
        let before = judged_count();
        Spi::run("INSERT INTO hk SELECT g, 'v' FROM generate_series(1, 100) g").unwrap();
        Spi::run("UPDATE hk SET v = 'w' WHERE id < 50").unwrap();
        Spi::run("DELETE FROM hk WHERE id > 90").unwrap();
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM hk").unwrap(),
            Some(90)
        );
        Spi::run("SET work_mem = '8MB'").unwrap();
        Spi::run("SHOW work_mem").unwrap();
        Spi::run("LOCK TABLE hk IN ROW EXCLUSIVE MODE").unwrap();
        assert_eq!(judged_count(), before, "DML and unjudged statements judged");
        Spi::run("TRUNCATE hk").unwrap();
        assert_eq!(judged_count(), before + 1);
    }

    /// The lock_timeout the hook gives a judged statement is its own: after the statement the
    /// session's setting is back, nested or not.
    #[pg_test]
    fn the_hooks_lock_timeout_does_not_outlive_the_statement() {
        Spi::run("CREATE TABLE hk2 (id int)").unwrap();
        Spi::run("SET lock_timeout = 0").unwrap();
        Spi::run("TRUNCATE hk2").unwrap();
        Spi::run("LOCK TABLE hk2 IN ACCESS EXCLUSIVE MODE").unwrap();
        assert_eq!(
            Spi::get_one::<String>("SHOW lock_timeout")
                .unwrap()
                .as_deref(),
            Some("0")
        );
        Spi::run("SET lock_timeout = '5min'").unwrap();
        Spi::run("CREATE FUNCTION hk2_empty() RETURNS void LANGUAGE sql AS 'TRUNCATE hk2'")
            .unwrap();
        Spi::run("SELECT hk2_empty()").unwrap();
        assert_eq!(
            Spi::get_one::<String>("SHOW lock_timeout")
                .unwrap()
                .as_deref(),
            Some("5min")
        );
    }

    /// `dependent_views::around_column_change()`, the API other column changes call (the
    /// expand/contract contract step): outside safe mode, around a change it makes itself, the
    /// views on the column are dropped, the change runs, and they come back with their owner,
    /// options, grants and comment, and the new type; an error in the change is returned with
    /// the views not recreated (the caller's abort restores them).
    #[pg_test]
    fn around_column_change_rebuilds_views_for_a_caller() {
        use crate::dependent_views::around_column_change;
        use crate::error::UserError;
        Spi::run(
            "CREATE ROLE dv_api_owner;
             GRANT CREATE ON SCHEMA public TO dv_api_owner;
             CREATE TABLE dv_api (id int, n int);
             CREATE VIEW dv_api_v WITH (security_barrier) AS SELECT id, n FROM dv_api;
             CREATE VIEW dv_api_vv AS SELECT n * 2 AS twice FROM dv_api_v;
             ALTER VIEW dv_api_v OWNER TO dv_api_owner;
             ALTER VIEW dv_api_vv OWNER TO dv_api_owner;
             GRANT SELECT ON dv_api_vv TO PUBLIC;
             COMMENT ON VIEW dv_api_vv IS 'doubled'",
        )
        .unwrap();
        let snapshot = || {
            Spi::get_one::<String>(
                "SELECT string_agg(concat_ws(' ', relname, pg_get_userbyid(relowner), reloptions,
                                             relacl, obj_description(oid, 'pg_class'),
                                             pg_get_viewdef(oid)), '; ' ORDER BY relname)
                 FROM pg_class WHERE relname IN ('dv_api_v', 'dv_api_vv')",
            )
            .unwrap()
            .unwrap()
        };
        let before = snapshot();
        let table = Spi::get_one::<pg_sys::Oid>("SELECT 'dv_api'::regclass::oid")
            .unwrap()
            .unwrap();
        let dropped = around_column_change(table, &[2], || {
            let views = Spi::get_one::<i64>(
                "SELECT count(*) FROM pg_class WHERE relname IN ('dv_api_v', 'dv_api_vv')",
            )
            .unwrap()
            .unwrap();
            Spi::run("ALTER TABLE dv_api ALTER COLUMN n TYPE bigint").unwrap();
            Ok(views)
        })
        .unwrap();
        assert_eq!(dropped, 0, "the change ran with the views dropped");
        assert_eq!(snapshot(), before);
        assert_eq!(
            Spi::get_one::<String>(
                "SELECT atttypid::regtype::text FROM pg_attribute
                 WHERE attrelid = 'dv_api_vv'::regclass AND attname = 'twice'"
            )
            .unwrap()
            .as_deref(),
            Some("bigint")
        );
        let failed = around_column_change(table, &[2], || -> crate::error::Result<()> {
            Err(UserError::new(
                PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
                "change refused",
            ))
        });
        assert_eq!(
            failed.unwrap_err().code,
            PgSqlErrorCode::ERRCODE_OBJECT_IN_USE
        );
    }
}
