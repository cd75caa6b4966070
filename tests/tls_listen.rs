//! HTTPS on the HTTP listener (`listen.tls_cert`, `listen.tls_key`,
//! `listen.tls_client_ca`): curl and a real HAProxy (`check-ssl verify required
//! ca-file`) against the daemon, mutual TLS, certificate rotation by SIGHUP, and bad
//! pairs at start and at reload. Certificates are made by the test with the `openssl`
//! CLI; the checks run against the shared MariaDB.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, http_raw, wait_until, Daemon, Haproxy, MariaDb};

const PASSWORD: &str = "tlsListen-Pw-7";
const USER: &str = "tlslisten";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed CA: (certificate, key).
fn ca(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = format!("{name}-ca.key");
    let cert = format!("{name}-ca.pem");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
            "-out",
            &cert,
        ],
    );
    (dir.join(cert), dir.join(key))
}

/// A leaf certificate `cn` signed by `ca` with the given extensions: (cert, key).
fn leaf(dir: &Path, ca: &(PathBuf, PathBuf), cn: &str, ext: &str) -> (PathBuf, PathBuf) {
    leaf_serial(dir, ca, cn, ext, "4242")
}

fn leaf_serial(
    dir: &Path,
    ca: &(PathBuf, PathBuf),
    cn: &str,
    ext: &str,
    serial: &str,
) -> (PathBuf, PathBuf) {
    let file = cn.replace(' ', "-");
    let (key, csr, cert, extfile) = (
        format!("{file}.key"),
        format!("{file}.csr"),
        format!("{file}.pem"),
        format!("{file}.ext"),
    );
    std::fs::write(dir.join(&extfile), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-subj",
            &format!("/CN={cn}"),
            "-out",
            &csr,
        ],
    );
    let (ca_cert, ca_key) = (ca.0.to_str().unwrap(), ca.1.to_str().unwrap());
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            ca_cert,
            "-CAkey",
            ca_key,
            "-set_serial",
            serial,
            "-days",
            "2",
            "-extfile",
            &extfile,
            "-out",
            &cert,
        ],
    );
    (dir.join(cert), dir.join(key))
}

fn server_cert(dir: &Path, ca: &(PathBuf, PathBuf), cn: &str) -> (PathBuf, PathBuf) {
    server_cert_serial(dir, ca, cn, "4242")
}

fn server_cert_serial(
    dir: &Path,
    ca: &(PathBuf, PathBuf),
    cn: &str,
    serial: &str,
) -> (PathBuf, PathBuf) {
    leaf_serial(
        dir,
        ca,
        cn,
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        serial,
    )
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn config(http: u16, tls: &str) -> String {
    format!(
        "[listen]\nhttp = \"127.0.0.1:{http}\"\n{tls}\n[mysql]\nport = {}\nuser = \"{USER}\"\n\
         [check]\ninterval = \"200ms\"\ntimeout = \"200ms\"\nstale_after = \"3s\"\n",
        db().port()
    )
}

fn tls_keys(cert: &Path, key: &Path) -> String {
    format!("tls_cert = \"{}\"\ntls_key = \"{}\"\n", s(cert), s(key))
}

fn db() -> &'static MariaDb {
    static ONCE: std::sync::Once = std::sync::Once::new();
    let db = MariaDb::shared();
    ONCE.call_once(|| db.create_checker_user(USER, PASSWORD));
    db
}

fn daemon(tls: &str) -> Daemon {
    Daemon::start(
        &config(free_port(), tls),
        &[("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)],
    )
}

/// `curl` over HTTPS: Ok((status, body)), or Err(curl's exit code and stderr) when
/// no HTTP answer came.
fn curl(port: u16, path: &str, extra: &[&str]) -> Result<(u16, String), String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(extra)
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .stdin(Stdio::null())
        .output()
        .expect("curl installed");
    if !out.status.success() {
        return Err(format!(
            "curl exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok((code.trim().parse().unwrap_or(0), body.to_string()))
}

/// Polls until the daemon's first verdict is in (anything but `starting`).
fn settled(port: u16, extra: &[&str]) {
    wait_until(
        Duration::from_secs(15),
        "a first verdict over HTTPS",
        || matches!(curl(port, "/", extra), Ok((_, b)) if !b.contains("starting")),
    );
}

/// The subject and serial of the certificate served on `port`, read with
/// `openssl s_client` (empty if no handshake).
fn served_cert(port: u16) -> String {
    let client = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("openssl s_client");
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl x509");
    use std::io::Write;
    let _ = x509.stdin.take().unwrap().write_all(&client.stdout);
    let out = x509.wait_with_output().expect("openssl x509 output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn reloads(d: &Daemon) -> usize {
    d.log().matches("reloaded ").count()
}

#[test]
fn https_answers_checks_and_haproxy_check_ssl_marks_up() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca(dir.path(), "main");
    let (cert, key) = server_cert(dir.path(), &ca, "mysqlchk one");
    let d = daemon(&tls_keys(&cert, &key));
    let port = d.http_port();
    let cacert = ["--cacert", ca.0.to_str().unwrap()];
    settled(port, &cacert);
    assert_eq!(curl(port, "/", &cacert), Ok((200, "health: up\n".into())));
    assert_eq!(
        curl(port, "/primary", &cacert),
        Ok((200, "primary: up\n".into()))
    );
    // HTTP/1.0 works too (HAProxy's default check is an HTTP/1.0 OPTIONS).
    assert_eq!(
        curl(
            port,
            "/",
            &["--cacert", ca.0.to_str().unwrap(), "--http1.0"]
        ),
        Ok((200, "health: up\n".into()))
    );
    // Without the CA, curl refuses our certificate: it is really TLS.
    assert!(curl(port, "/", &[]).is_err());

    // Plain HTTP to the HTTPS port: no answer in clear (a TLS alert at most).
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let raw = http_raw(addr, b"GET / HTTP/1.0\r\n\r\n", Duration::from_secs(5));
    assert!(
        !String::from_utf8_lossy(&raw).contains("HTTP/"),
        "answered in clear: {:?}",
        String::from_utf8_lossy(&raw)
    );
    assert!(d.log().contains("TLS handshake failed"), "{}", d.log());
    // The daemon still serves.
    assert_eq!(curl(port, "/", &cacert), Ok((200, "health: up\n".into())));

    // A real HAProxy: check-ssl with verification against our CA marks the server UP;
    // with another CA it fails at layer 6 (the handshake).
    let other = self::ca(dir.path(), "other");
    let front = free_port();
    let hap = Haproxy::start(&format!(
        "listen writer\n    bind 127.0.0.1:{front}\n    mode tcp\n    option httpchk\n    \
         http-check send meth GET uri /primary\n    \
         server good 127.0.0.1:{db} check port {port} check-ssl verify required ca-file {ca} inter 300 rise 1 fall 1\n    \
         server bad 127.0.0.1:{db} check port {port} check-ssl verify required ca-file {other} inter 300 rise 1 fall 1\n",
        db = db().port(),
        ca = s(&ca.0),
        other = s(&other.0),
    ));
    hap.wait_for_checked_state("writer", "good", "UP", Duration::from_secs(15));
    hap.wait_for_checked_state("writer", "bad", "DOWN", Duration::from_secs(15));
    let bad = hap
        .stat_field("writer", "bad", "check_status")
        .unwrap_or_default();
    assert!(bad.contains("L6"), "{bad}");
    let good = hap
        .stat_field("writer", "good", "check_status")
        .unwrap_or_default();
    assert_eq!(good, "L7OK");
}

#[test]
fn mutual_tls_refuses_clients_without_a_certificate_from_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = ca(dir.path(), "server");
    let client_ca = ca(dir.path(), "client");
    let stranger_ca = ca(dir.path(), "stranger");
    let (cert, key) = server_cert(dir.path(), &server_ca, "mysqlchk mtls");
    let client = leaf(
        dir.path(),
        &client_ca,
        "haproxy one",
        "extendedKeyUsage=clientAuth\n",
    );
    let stranger = leaf(
        dir.path(),
        &stranger_ca,
        "intruder",
        "extendedKeyUsage=clientAuth\n",
    );
    let d = daemon(&format!(
        "{}tls_client_ca = \"{}\"\n",
        tls_keys(&cert, &key),
        s(&client_ca.0)
    ));
    let port = d.http_port();
    let cacert = server_ca.0.to_str().unwrap();
    let with = |c: &(PathBuf, PathBuf)| {
        vec![
            "--cacert".to_string(),
            cacert.to_string(),
            "--cert".into(),
            s(&c.0),
            "--key".into(),
            s(&c.1),
        ]
    };
    let good = with(&client);
    let good: Vec<&str> = good.iter().map(String::as_str).collect();
    settled(port, &good);
    assert_eq!(curl(port, "/", &good), Ok((200, "health: up\n".into())));
    assert_eq!(
        curl(port, "/primary", &good),
        Ok((200, "primary: up\n".into()))
    );
    // No client certificate, or one from another CA: refused at the handshake.
    let none = curl(port, "/", &["--cacert", cacert]);
    assert!(none.is_err(), "{none:?}");
    let bad = with(&stranger);
    let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
    let refused = curl(port, "/", &bad);
    assert!(refused.is_err(), "{refused:?}");
}

#[test]
fn sighup_rotates_the_certificate_and_a_bad_pair_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca(dir.path(), "rot");
    let first = server_cert_serial(dir.path(), &ca, "first cert", "1001");
    let second = server_cert_serial(dir.path(), &ca, "second cert", "4242");
    // The daemon reads fixed paths; rotation replaces the files, as certbot does.
    let (cert, key) = (dir.path().join("live.pem"), dir.path().join("live.key"));
    std::fs::copy(&first.0, &cert).unwrap();
    std::fs::copy(&first.1, &key).unwrap();
    let d = daemon(&tls_keys(&cert, &key));
    let port = d.http_port();
    let cacert = ["--cacert", ca.0.to_str().unwrap()];
    settled(port, &cacert);
    let served = served_cert(port);
    assert!(
        served.contains("CN = first cert") && served.contains("serial=03E9"),
        "{served}"
    );

    std::fs::copy(&second.0, &cert).unwrap();
    std::fs::copy(&second.1, &key).unwrap();
    d.signal(libc::SIGHUP);
    wait_until(Duration::from_secs(10), "the reload", || reloads(&d) >= 1);
    let served = served_cert(port);
    assert!(served.contains("CN = second cert"), "{served}");
    assert!(served.contains("serial=1092"), "{served}");
    assert_eq!(curl(port, "/", &cacert), Ok((200, "health: up\n".into())));

    // A broken pair (the first key with the second certificate): the reload is
    // rejected, the log says why, and the second certificate is still served.
    std::fs::copy(&first.1, &key).unwrap();
    d.signal(libc::SIGHUP);
    d.wait_for_log("reload rejected: keeping", Duration::from_secs(10));
    let log = d.log();
    assert!(
        log.contains("are not a usable pair") && log.contains("live.key"),
        "{log}"
    );
    assert!(!log.contains("BEGIN"), "{log}");
    assert!(served_cert(port).contains("CN = second cert"));
    assert_eq!(curl(port, "/", &cacert), Ok((200, "health: up\n".into())));
    // Plain HTTP stays refused (the old TLS configuration is the running one).
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let raw = http_raw(addr, b"GET / HTTP/1.0\r\n\r\n", Duration::from_secs(5));
    assert!(!String::from_utf8_lossy(&raw).contains("HTTP/"));
}

#[test]
fn a_bad_pair_at_start_is_a_config_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca(dir.path(), "start");
    let (cert, key) = server_cert(dir.path(), &ca, "start cert");
    let (_, other_key) = server_cert(dir.path(), &ca, "other cert");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let cases = [
        (
            format!("tls_cert = \"{}\"\n", s(&cert)),
            "listen.tls_cert is set but listen.tls_key is missing".to_string(),
        ),
        (
            format!("tls_key = \"{}\"\n", s(&key)),
            "listen.tls_key is set but listen.tls_cert is missing".to_string(),
        ),
        (
            format!("tls_client_ca = \"{}\"\n", s(&ca.0)),
            "listen.tls_client_ca needs listen.tls_cert and listen.tls_key".to_string(),
        ),
        (tls_keys(&cert, &other_key), "are not a usable pair".into()),
        (
            tls_keys(&empty, &key),
            format!("listen.tls_cert = \"{}\": no PEM certificate", s(&empty)),
        ),
        (
            tls_keys(&cert, &dir.path().join("missing.key")),
            "missing.key\": cannot be read".into(),
        ),
        (
            format!(
                "{}tls_client_ca = \"{}\"\n",
                tls_keys(&cert, &key),
                s(&empty)
            ),
            format!("listen.tls_client_ca = \"{}\": no PEM", s(&empty)),
        ),
    ];
    for (tls, want) in cases {
        let mut d = Daemon::spawn(
            &config(free_port(), &tls),
            &[("MYSQLCHK_MYSQL_PASSWORD", PASSWORD)],
            &[],
        );
        let status = d.wait_exit(Duration::from_secs(10)).expect("exits");
        assert_eq!(status.code(), Some(78), "{tls}: {}", d.log());
        assert!(d.log().contains(&want), "{want}: {}", d.log());
    }
}
