//! `migrate-cli`: a client for the migrate extension's SQL API (see README.md).

use migrate_cli::layout;

fn main() {
    for layout in layout::Layout::ALL {
        println!("{layout}");
    }
}
