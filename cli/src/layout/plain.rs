//! The project's own layout: `VERSION_name.up.sql` with an optional `VERSION_name.down.sql`
//! next to it (`VERSION.up.sql` without a name works too). The version is everything before
//! the first `_`; order is the registry's natural version order.

use std::path::Path;

use super::{read, LayoutError, MigrationFile};

const UP: &str = ".up.sql";
const DOWN: &str = ".down.sql";

pub fn matches(dir: &Path) -> bool {
    entries(dir).is_ok_and(|names| names.iter().any(|n| n.ends_with(UP)))
}

pub fn load(dir: &Path) -> Result<Vec<MigrationFile>, LayoutError> {
    let names = entries(dir)?;
    let mut out = Vec::new();
    for up_name in names.iter().filter(|n| n.ends_with(UP)) {
        let stem = &up_name[..up_name.len() - UP.len()];
        let (version, name) = match stem.split_once('_') {
            Some((v, n)) => (v, Some(n.to_string())),
            None => (stem, None),
        };
        if version.is_empty() {
            return Err(LayoutError::Invalid(
                dir.join(up_name),
                0,
                "the file name has no version before the first '_'".into(),
            ));
        }
        let up_path = dir.join(up_name);
        let down_name = format!("{stem}{DOWN}");
        let down_path = names.contains(&down_name).then(|| dir.join(&down_name));
        out.push(MigrationFile {
            version: version.to_string(),
            name,
            up: read(&up_path)?,
            down: down_path.as_deref().map(read).transpose()?,
            transactional: None,
            repeatable: false,
            requires: Vec::new(),
            up_path,
            up_line: 1,
            down_path,
            down_line: 1,
        });
    }
    for down_name in names.iter().filter(|n| n.ends_with(DOWN)) {
        let stem = &down_name[..down_name.len() - DOWN.len()];
        if !names.contains(&format!("{stem}{UP}")) {
            return Err(LayoutError::Invalid(
                dir.join(down_name),
                0,
                format!("a down script without its up script {stem}{UP}"),
            ));
        }
    }
    out.sort_by(|a, b| migrate_core::version::compare(&a.version, &b.version));
    Ok(out)
}

/// File names in `dir`, sorted.
fn entries(dir: &Path) -> Result<Vec<String>, LayoutError> {
    let read_dir = std::fs::read_dir(dir).map_err(|e| LayoutError::Io(dir.to_path_buf(), e))?;
    let mut names = Vec::new();
    for entry in read_dir {
        let entry = entry.map_err(|e| LayoutError::Io(dir.to_path_buf(), e))?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}
