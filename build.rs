//! Build script: the files the Debian package ships besides the binary (README,
//! "Install"), generated so they can never disagree with the binary or with `deploy/`:
//!
//! - the man pages `mysqlchk(1)`, `mysqlchk-serve(1)`, ... (gzipped) and the bash, zsh and fish completions, rendered from the
//!   same clap definitions the binary parses with (`src/cli/args.rs`, which depends on
//!   nothing but clap and std for this reason);
//! - the systemd units, sysusers and tmpfiles files of `deploy/`, with `ExecStart=` and
//!   the xinetd `server` pointing at the packaged `/usr/bin/mysqlchk` instead of the
//!   `/usr/local/bin/mysqlchk` of a manual installation.
//!
//! cargo-deb names its assets by paths under `target/release/`, but `$OUT_DIR` holds a
//! hash: the files go to `<profile dir>/deb/` (three levels above `$OUT_DIR`), a fixed
//! path `Cargo.toml` can list. The sysusers and tmpfiles files keep their installed
//! name `mysqlchk.conf` (in `deb/sysusers.d/` and `deb/tmpfiles.d/`) because cargo-deb's
//! generated postinst runs `systemd-sysusers <source file name>`, which must be the
//! name under `/usr/lib/sysusers.d/`.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[allow(dead_code)]
#[path = "src/cli/args.rs"]
mod args;

use clap::CommandFactory;

/// Units and files of `deploy/` that name the binary, and which go into the package.
const DEPLOY_FILES: &[&str] = &[
    "mysqlchk.service",
    "mysqlchk@.service",
    "mysqlchk.socket",
    "mysqlchk-agent.socket",
    "mysqlchk-inetd.socket",
    "mysqlchk-inetd@.service",
    "xinetd.mysqlchk",
];

fn main() -> io::Result<()> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/cli/args.rs");
    println!("cargo:rerun-if-changed=deploy");

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // <target>/<profile>/build/mysqlchk-<hash>/out -> <target>/<profile>
    let profile_dir = out_dir
        .ancestors()
        .nth(3)
        .expect("OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out");
    let deb = profile_dir.join("deb");
    for sub in [
        "man",
        "completions",
        "systemd",
        "sysusers.d",
        "tmpfiles.d",
        "doc",
    ] {
        fs::create_dir_all(deb.join(sub))?;
    }

    let mut cmd = args::Cli::command().disable_help_subcommand(true);
    cmd.build();
    man_pages(&cmd, &deb.join("man"), true)?;

    for (shell, name) in [
        (clap_complete::Shell::Bash, "mysqlchk"),
        (clap_complete::Shell::Zsh, "_mysqlchk"),
        (clap_complete::Shell::Fish, "mysqlchk.fish"),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "mysqlchk", &mut script);
        write_if_changed(&deb.join("completions").join(name), &script)?;
    }

    let deploy = Path::new("deploy");
    for name in DEPLOY_FILES {
        let text = fs::read_to_string(deploy.join(name))?;
        let dir = if name.starts_with("xinetd") {
            "doc"
        } else {
            "systemd"
        };
        write_if_changed(&deb.join(dir).join(name), packaged(&text).as_bytes())?;
    }
    for (src, dir) in [
        ("mysqlchk.sysusers.conf", "sysusers.d"),
        ("mysqlchk.tmpfiles.conf", "tmpfiles.d"),
    ] {
        let text = fs::read(deploy.join(src))?;
        write_if_changed(&deb.join(dir).join("mysqlchk.conf"), &text)?;
    }
    Ok(())
}

/// `mysqlchk(1)` and one page per subcommand (`mysqlchk-serve(1)`, ...), which the
/// SUBCOMMANDS section of the parent page names. The top page also says where the
/// files are.
fn man_pages(cmd: &clap::Command, dir: &Path, top: bool) -> io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, dir, false)?;
    }
    let man = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    if top {
        man.render_title(&mut page)?;
        man.render_name_section(&mut page)?;
        man.render_synopsis_section(&mut page)?;
        man.render_description_section(&mut page)?;
        man.render_options_section(&mut page)?;
        man.render_subcommands_section(&mut page)?;
        page.extend_from_slice(FILES_SECTION.as_bytes());
        man.render_version_section(&mut page)?;
    } else {
        man.render(&mut page)?;
    }
    // gzip -9n: best compression, no name or time stamp in the header.
    let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::best());
    gz.write_all(&page)?;
    let name = format!("{}.gz", man.get_filename());
    write_if_changed(&dir.join(name), &gz.finish()?)
}

/// Where the package puts things (README, "Install").
const FILES_SECTION: &str = r#".SH FILES
.TP
\fI/etc/mysqlchk/mysqlchk.toml\fR
The configuration (root:mysqlchk 0640), created from the example at installation when
absent; check it with \fBmysqlchk validate\fR.
.TP
\fI/etc/mysqlchk/password\fR
The MySQL password of the checker's account, handed to the daemon as a systemd
credential.
.TP
\fI/var/lib/mysqlchk/maintenance\fR
The maintenance flag (\fBmysqlchk maintenance\fR).
.TP
\fI/usr/share/doc/mysqlchk/\fR
The README, the example configuration with every setting, the grants for MariaDB
and MySQL, the xinetd service.
.SH "SEE ALSO"
\fBsystemctl\fR(1), \fBhaproxy\fR(1)
"#;

/// A deploy file as packaged: the binary is `/usr/bin/mysqlchk` (only the lines that
/// run it change; the comments keep describing a manual installation, so a header says
/// which path the package uses), and units name their man page.
fn packaged(text: &str) -> String {
    let mut out = String::from(
        "# Installed by the mysqlchk Debian package: the binary is /usr/bin/mysqlchk (the\n\
         # install steps below are for a manual installation from source).\n",
    );
    for line in text.lines() {
        let runs_it = line.starts_with("Exec") || line.trim_start().starts_with("server");
        if runs_it {
            out.push_str(&line.replace("/usr/local/bin/mysqlchk", "/usr/bin/mysqlchk"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
        if line == "[Unit]" {
            // `systemctl help mysqlchk` opens the packaged man page.
            out.push_str("Documentation=man:mysqlchk(1)\n");
        }
    }
    out
}

/// Leaves the file (and its mtime) alone when the content is the same.
fn write_if_changed(path: &Path, content: &[u8]) -> io::Result<()> {
    if fs::read(path).is_ok_and(|old| old == content) {
        return Ok(());
    }
    fs::write(path, content)
}
