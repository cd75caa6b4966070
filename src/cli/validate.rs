//! `mysqlchk validate`: the effective settings on stdout (secrets masked), or every
//! config error on stderr, one line each; exit 0 valid, 3 invalid (README, "Commands").

use std::path::Path;

pub(super) fn run(cli: Option<&Path>) -> i32 {
    match super::load_or_print_errors(cli) {
        Ok(loaded) => {
            print!("{}", loaded.config.render());
            0
        }
        Err(_) => 3,
    }
}
