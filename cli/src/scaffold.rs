//! `new NAME [DIR]`: the next migration's files, in the folder's own layout.

use std::path::Path;

use crate::error::CliError;
use crate::layout::{self, Layout};

/// `migrate-cli new NAME [DIR]`: a new folder gets the plain layout.
pub fn new(dir: &Path, layout: Option<Layout>, name: &str) -> Result<(), CliError> {
    let empty = std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none());
    let layout = match layout {
        Some(l) => l,
        None if empty => Layout::Plain,
        None => layout::detect(dir)?,
    };
    for file in layout::scaffold(dir, layout, name)? {
        let what = if file.replaces { "updated" } else { "created" };
        println!("{what} {}", file.path.display());
    }
    Ok(())
}
