//! The `mysqlchk` binary: everything lives in the library; see `cli` for the commands.

use std::process::ExitCode;

fn main() -> ExitCode {
    mysqlchk::cli::main()
}
