//! `migrate-cli`: a client for the migrate extension's SQL API (see README.md).

mod layout;

fn main() {
    for layout in layout::Layout::ALL {
        println!("{layout}");
    }
}
