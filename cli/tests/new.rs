//! `migrate-cli new`: the next file pair in the folder's own layout (no server needed).

mod common;

use common::{command, folder, output, path, write};

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn new_scaffolds_timestamps_or_the_next_integer() {
    let root = folder("new");
    let dir = root.join("migrations");
    let run = output(command(&["new", "Add users", path(&dir)])).expect(0);
    let names = files(&dir);
    assert_eq!(names.len(), 2, "{names:?}");
    // VERSION is a UTC timestamp YYYYMMDDHHMMSS.
    let (version, rest) = names[0].split_once('_').unwrap();
    assert_eq!(version.len(), 14);
    assert!(version.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(rest, "add_users.down.sql");
    assert_eq!(names[1], format!("{version}_add_users.up.sql"));
    assert!(run
        .stdout
        .contains(&format!("created {}", dir.join(&names[1]).display())));

    let numbered = root.join("numbered");
    std::fs::create_dir_all(&numbered).unwrap();
    write(&numbered, &[("007_first.up.sql", "SELECT 1;\n")]);
    output(command(&[
        "new",
        "second",
        path(&numbered),
        "--layout",
        "plain",
    ]))
    .expect(0);
    assert_eq!(
        files(&numbered),
        [
            "007_first.up.sql",
            "008_second.down.sql",
            "008_second.up.sql"
        ]
    );
    output(command(&["new", "!!!", path(&numbered)])).expect(1);
    output(command(&["new"])).expect(2);
}
