//! A password from libpq's password file, against a server that asks for one (SCRAM).

mod common;
use common::*;

#[test]
fn the_password_file_answers_a_scram_server() {
    let (cluster, mut c) = start("pgpass");
    c.batch_execute(
        "SET password_encryption = 'scram-sha-256';
         CREATE ROLE deployer LOGIN SUPERUSER PASSWORD 'S3cret:pass';",
    )
    .unwrap();
    // Password authentication for deployer over TCP; everyone else as before.
    let hba = cluster.dir.join("data/pg_hba.conf");
    let rest = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("host all deployer 127.0.0.1/32 scram-sha-256\n{rest}"),
    )
    .unwrap();
    c.batch_execute("SELECT pg_reload_conf()").unwrap();

    let dir = folder("pgpass");
    let file = dir.join("pgpass");
    let url = format!("postgres://deployer@127.0.0.1:{}/postgres", cluster.port);
    let status = |file_text: &str, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&file, file_text).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let mut cmd = command(&["--database-url", &url, "status"]);
        cmd.env("PGPASSFILE", &file);
        output(cmd)
    };
    let line = format!(
        "127.0.0.1:{}:postgres:deployer:S3cret\\:pass\n",
        cluster.port
    );
    status(&line, 0o600).expect(0);
    // A file others can read is ignored, as libpq ignores it: no password, refused.
    let open = status(&line, 0o644).expect(1);
    assert!(
        open.stderr.contains("has group or world access"),
        "{}",
        open.stderr
    );
    // A line for another port does not match.
    status("127.0.0.1:1:*:*:S3cret\\:pass\n", 0o600).expect(1);
}
